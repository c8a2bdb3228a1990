using CrCheckpoint.Engine.Native;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>
/// One NETLINK_SOCK_DIAG dump: the kernel's list of the machine's sockets of one family, with what
/// /proc does not show (socketpair peers, listen backlogs).
/// </summary>
internal static unsafe class SockDiag
{
    private const int AF_NETLINK = 16, SOCK_RAW = 3, SOCK_CLOEXEC = 0x80000, NETLINK_SOCK_DIAG = 4, HeaderLength = 16;
    private const ushort SOCK_DIAG_BY_FAMILY = 20, NLM_F_REQUEST = 1, NLM_F_DUMP = 0x300, NLMSG_DONE = 3, NLMSG_ERROR = 2;

    public delegate void MessageHandler(byte* message, int length);

    /// <summary>Sends <paramref name="request"/> (the family's request structure) and hands every socket's message to <paramref name="onMessage"/>.</summary>
    public static void Dump(ReadOnlySpan<byte> request, MessageHandler onMessage)
    {
        var fd = (int)ErrnoCheck.Check(Interop.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG), "socket(NETLINK_SOCK_DIAG)");
        try
        {
            var total = HeaderLength + request.Length;
            var message = stackalloc byte[total];
            new Span<byte>(message, total).Clear();
            *(uint*)message = (uint)total;
            *(ushort*)(message + 4) = SOCK_DIAG_BY_FAMILY;
            *(ushort*)(message + 6) = NLM_F_REQUEST | NLM_F_DUMP;
            request.CopyTo(new Span<byte>(message + HeaderLength, request.Length));
            if (Interop.write(fd, message, (nuint)total) != total) throw new NativeException("sock_diag request", ErrnoCheck.LastErrno);

            var buffer = new byte[64 * 1024];
            fixed (byte* b = buffer)
            {
                while (true)
                {
                    var n = (int)Interop.read(fd, b, (nuint)buffer.Length);
                    if (n <= 0) throw new NativeException("sock_diag reply", n == 0 ? (int)Errno.EIO : ErrnoCheck.LastErrno);
                    for (var at = 0; at + HeaderLength <= n;)
                    {
                        var length = *(int*)(b + at);
                        var type = *(ushort*)(b + at + 4);
                        if (type == NLMSG_DONE) return;
                        if (type == NLMSG_ERROR) throw new NativeException("sock_diag", -*(int*)(b + at + HeaderLength));
                        onMessage(b + at + HeaderLength, length - HeaderLength);
                        at += (length + 3) & ~3;
                    }
                }
            }
        }
        finally
        {
            Interop.close(fd);
        }
    }
}
