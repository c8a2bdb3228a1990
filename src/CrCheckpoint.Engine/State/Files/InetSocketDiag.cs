using CrCheckpoint.Engine.Native;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>
/// The backlog of every listening TCP socket of the machine, and the connections waiting in it,
/// through one NETLINK_SOCK_DIAG dump per family: /proc/net/tcp does not show the backlog.
/// </summary>
public static unsafe class InetSocketDiag
{
    private const int AF_NETLINK = 16, SOCK_RAW = 3, SOCK_CLOEXEC = 0x80000, NETLINK_SOCK_DIAG = 4, IPPROTO_TCP = 6;
    private const ushort SOCK_DIAG_BY_FAMILY = 20, NLM_F_REQUEST = 1, NLM_F_DUMP = 0x300, NLMSG_DONE = 3, NLMSG_ERROR = 2;
    private const int TCP_LISTEN = 10;

    public static Dictionary<ulong, (int Backlog, int Waiting)> Listeners(int family)
    {
        var fd = (int)ErrnoCheck.Check(Interop.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG), "socket(NETLINK_SOCK_DIAG)");
        try
        {
            // nlmsghdr (16) + inet_diag_req_v2 (56): family, protocol, ext, pad, states, then a zero socket id.
            const int Length = 16 + 56;
            var request = stackalloc byte[Length];
            new Span<byte>(request, Length).Clear();
            *(uint*)request = Length;
            *(ushort*)(request + 4) = SOCK_DIAG_BY_FAMILY;
            *(ushort*)(request + 6) = NLM_F_REQUEST | NLM_F_DUMP;
            request[16] = (byte)family;
            request[17] = IPPROTO_TCP;
            *(uint*)(request + 20) = 1u << TCP_LISTEN;
            if (Interop.write(fd, request, Length) != Length) throw new NativeException("sock_diag request", ErrnoCheck.LastErrno);

            var result = new Dictionary<ulong, (int, int)>();
            var buffer = new byte[64 * 1024];
            fixed (byte* b = buffer)
            {
                while (true)
                {
                    var n = (int)Interop.read(fd, b, (nuint)buffer.Length);
                    if (n <= 0) throw new NativeException("sock_diag reply", n == 0 ? (int)Errno.EIO : ErrnoCheck.LastErrno);
                    for (var at = 0; at + 16 <= n;)
                    {
                        var length = *(int*)(b + at);
                        var type = *(ushort*)(b + at + 4);
                        if (type == NLMSG_DONE) return result;
                        if (type == NLMSG_ERROR) throw new NativeException("sock_diag", -*(int*)(b + at + 16));
                        // inet_diag_msg: family, state, timer, retrans, id (48), expires, rqueue, wqueue, uid, inode
                        var message = b + at + 16;
                        result[*(uint*)(message + 68)] = ((int)*(uint*)(message + 60), (int)*(uint*)(message + 56));
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
