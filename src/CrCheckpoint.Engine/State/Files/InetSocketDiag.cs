namespace CrCheckpoint.Engine.State.Files;

/// <summary>
/// The backlog of every listening TCP socket of the machine, and the connections waiting in it,
/// through a sock_diag dump: /proc/net/tcp does not show the backlog.
/// </summary>
public static unsafe class InetSocketDiag
{
    private const int IPPROTO_TCP = 6, TCP_LISTEN = 10;

    public static Dictionary<ulong, (int Backlog, int Waiting)> Listeners(int family)
    {
        // inet_diag_req_v2: family, protocol, ext, pad, states, then a zero socket id.
        Span<byte> request = stackalloc byte[56];
        request.Clear();
        request[0] = (byte)family;
        request[1] = IPPROTO_TCP;
        BitConverter.TryWriteBytes(request[4..], 1u << TCP_LISTEN);
        var result = new Dictionary<ulong, (int, int)>();
        // inet_diag_msg: family, state, timer, retrans, id (48 bytes), expires, rqueue, wqueue, uid, inode
        SockDiag.Dump(request, (message, _) => result[*(uint*)(message + 68)] = ((int)*(uint*)(message + 60), (int)*(uint*)(message + 56)));
        return result;
    }

    /// <summary>
    /// The shutdown state (1 receiving, 2 sending) of every TCP, UDP or raw socket of one family and
    /// protocol that has one, by inode. Raw sockets are asked for as IPPROTO_RAW with their own protocol in the pad byte.
    /// </summary>
    public static Dictionary<ulong, int> Shutdowns(int family, int protocol, bool raw = false)
    {
        const ushort INET_DIAG_SHUTDOWN = 8;
        Span<byte> request = stackalloc byte[56];
        request.Clear();
        request[0] = (byte)family;
        request[1] = raw ? (byte)255 : (byte)protocol;
        if (raw) request[3] = (byte)protocol;
        BitConverter.TryWriteBytes(request[4..], 0xffffffffu);
        var result = new Dictionary<ulong, int>();
        SockDiag.Dump(request, (message, length) =>
        {
            // The attributes follow the 72 bytes of inet_diag_msg.
            for (var at = 72; at + 4 <= length;)
            {
                var attrLength = *(ushort*)(message + at);
                if (attrLength < 4) break;
                if (*(ushort*)(message + at + 2) == INET_DIAG_SHUTDOWN && message[at + 4] != 0)
                    result[*(uint*)(message + 68)] = message[at + 4];
                at += (attrLength + 3) & ~3;
            }
        });
        return result;
    }
}
