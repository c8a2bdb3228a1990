using CrCheckpoint.Engine.Native;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>One unix socket as the kernel's sock_diag reports it.</summary>
/// <summary>
/// One unix socket as the kernel's sock_diag reports it. For a listening socket the receive queue
/// counts the connections waiting to be accepted and <paramref name="Backlog"/> is listen()'s backlog.
/// A name in the abstract namespace starts with '@'; a socket bound to a path has the inode of its socket file.
/// </summary>
public sealed record UnixSocketInfo(ulong Inode, int Type, int State, ulong PeerInode, uint ReceiveQueue, uint Backlog, string? Name, uint FileInode)
{
    public const int Listening = 10; // TCP_LISTEN, which unix sockets use too

    public bool IsListening => State == Listening;
}

/// <summary>
/// Lists every unix socket of the machine with its peer, through one NETLINK_SOCK_DIAG dump: the
/// only interface that tells which socket is the other end of a socketpair.
/// </summary>
public static unsafe class UnixSocketDiag
{
    private const int AF_NETLINK = 16, AF_UNIX = 1, SOCK_RAW = 3, SOCK_CLOEXEC = 0x80000, NETLINK_SOCK_DIAG = 4;
    private const ushort SOCK_DIAG_BY_FAMILY = 20, NLM_F_REQUEST = 1, NLM_F_DUMP = 0x300, NLMSG_DONE = 3, NLMSG_ERROR = 2;
    private const uint UDIAG_SHOW_NAME = 1, UDIAG_SHOW_VFS = 2, UDIAG_SHOW_PEER = 4, UDIAG_SHOW_RQLEN = 0x10;
    private const ushort UNIX_DIAG_NAME = 0, UNIX_DIAG_VFS = 1, UNIX_DIAG_PEER = 2, UNIX_DIAG_RQLEN = 4;

    public static Dictionary<ulong, UnixSocketInfo> Dump()
    {
        var fd = (int)ErrnoCheck.Check(Interop.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG), "socket(NETLINK_SOCK_DIAG)");
        try
        {
            // nlmsghdr (16) + unix_diag_req (24)
            var request = stackalloc byte[40];
            new Span<byte>(request, 40).Clear();
            *(uint*)request = 40;
            *(ushort*)(request + 4) = SOCK_DIAG_BY_FAMILY;
            *(ushort*)(request + 6) = NLM_F_REQUEST | NLM_F_DUMP;
            request[16] = AF_UNIX;
            *(uint*)(request + 20) = 0xffffffff; // every state
            *(uint*)(request + 28) = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN;
            if (Interop.write(fd, request, 40) != 40) throw new NativeException("sock_diag request", ErrnoCheck.LastErrno);

            var result = new Dictionary<ulong, UnixSocketInfo>();
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
                        Parse(b + at + 16, length - 16, result);
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

    private static void Parse(byte* message, int length, Dictionary<ulong, UnixSocketInfo> into)
    {
        // unix_diag_msg: family u8, type u8, state u8, pad u8, ino u32, cookie u32[2]; then rtattrs
        int type = message[1], state = message[2];
        var inode = *(uint*)(message + 4);
        ulong peer = 0;
        uint rqueue = 0, wqueue = 0, fileInode = 0;
        string? name = null;
        for (var at = 16; at + 4 <= length;)
        {
            var attrLength = *(ushort*)(message + at);
            var attrType = *(ushort*)(message + at + 2);
            if (attrLength < 4) break;
            var payload = message + at + 4;
            switch (attrType)
            {
                case UNIX_DIAG_PEER: peer = *(uint*)payload; break;
                case UNIX_DIAG_VFS: fileInode = *(uint*)payload; break;
                case UNIX_DIAG_RQLEN:
                    rqueue = *(uint*)payload;
                    wqueue = *(uint*)(payload + 4);
                    break;
                case UNIX_DIAG_NAME:
                    name = System.Text.Encoding.UTF8.GetString(payload, attrLength - 4);
                    name = name.StartsWith('\0') ? "@" + name[1..] : name.TrimEnd('\0');
                    break;
            }
            at += (attrLength + 3) & ~3;
        }
        into[inode] = new UnixSocketInfo(inode, type, state, peer, rqueue, wqueue, name, fileInode);
    }
}
