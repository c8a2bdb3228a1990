using CrCheckpoint.Engine.Native;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>
/// One unix socket as the kernel's sock_diag reports it. For a listening socket the receive queue
/// counts the connections waiting to be accepted and <paramref name="Backlog"/> is listen()'s backlog.
/// A name in the abstract namespace starts with '@'; a socket bound to a path has the inode of its socket file.
/// <paramref name="Shutdown"/> is the directions shut down (1 receiving, 2 sending).
/// </summary>
public sealed record UnixSocketInfo(ulong Inode, int Type, int State, ulong PeerInode, uint ReceiveQueue, uint Backlog, string? Name, uint FileInode, int Shutdown = 0)
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
    private const byte AF_UNIX = 1;
    private const uint UDIAG_SHOW_NAME = 1, UDIAG_SHOW_VFS = 2, UDIAG_SHOW_PEER = 4, UDIAG_SHOW_RQLEN = 0x10;
    private const ushort UNIX_DIAG_NAME = 0, UNIX_DIAG_VFS = 1, UNIX_DIAG_PEER = 2, UNIX_DIAG_RQLEN = 4, UNIX_DIAG_SHUTDOWN = 6;

    public static Dictionary<ulong, UnixSocketInfo> Dump()
    {
        // unix_diag_req: family, protocol, pad, states, inode, show, cookie
        Span<byte> request = stackalloc byte[24];
        request.Clear();
        request[0] = AF_UNIX;
        BitConverter.TryWriteBytes(request[4..], 0xffffffff); // every state
        BitConverter.TryWriteBytes(request[12..], UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN);
        var result = new Dictionary<ulong, UnixSocketInfo>();
        SockDiag.Dump(request, (message, length) => Parse(message, length, result));
        return result;
    }

    private static void Parse(byte* message, int length, Dictionary<ulong, UnixSocketInfo> into)
    {
        // unix_diag_msg: family u8, type u8, state u8, pad u8, ino u32, cookie u32[2]; then rtattrs
        int type = message[1], state = message[2];
        var inode = *(uint*)(message + 4);
        ulong peer = 0;
        uint rqueue = 0, wqueue = 0, fileInode = 0;
        var shutdown = 0;
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
                case UNIX_DIAG_SHUTDOWN: shutdown = *payload; break;
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
        into[inode] = new UnixSocketInfo(inode, type, state, peer, rqueue, wqueue, name, fileInode, shutdown);
    }
}
