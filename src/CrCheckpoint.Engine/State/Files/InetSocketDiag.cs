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
}
