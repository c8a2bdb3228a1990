using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Restart;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>
/// The engine's copies of the connections it put in repair mode for a checkpoint. A connection in
/// repair mode sends nothing, not even a FIN when it is closed: when the checkpointed process is
/// killed, its connections are closed silently here, so that the peer notices nothing and the
/// restart can take over; otherwise they leave repair mode and carry on as before.
/// </summary>
public sealed class TcpRepairHold : IDisposable
{
    private readonly List<int> _sockets = [];

    public void Add(int socket) => _sockets.Add(socket);

    public int Count => _sockets.Count;

    /// <summary>Back to normal: the process goes on with its connections (or the checkpoint failed).</summary>
    public void Resume() => Close(repairOff: true);

    /// <summary>After the process was killed: the connections end without a word to the peer.</summary>
    public void CloseSilently() => Close(repairOff: false);

    private unsafe void Close(bool repairOff)
    {
        foreach (var s in _sockets)
        {
            if (repairOff) TcpConnectionState.SetRepair(s, false);
            close(s);
        }
        _sockets.Clear();
    }

    public void Dispose() => Resume();
}

/// <summary>
/// The connections a restart rebuilt, kept in repair mode until every socket of the restart exists:
/// leaving repair mode sends a window probe, and a probe to a peer of the same checkpoint that is not
/// rebuilt yet meets no socket and draws a reset. If the restart fails first they close silently.
/// </summary>
public sealed class RestoredConnections
{
    private readonly List<(int Socket, SocketOptionsRecord? Options, int ForFd)> _held = [];

    public void Add(int socket, SocketOptionsRecord? options, int forFd) => _held.Add((socket, options, forFd));

    public void Release()
    {
        foreach (var (socket, options, forFd) in _held)
        {
            if (!TcpConnectionState.SetRepair(socket, false))
                throw new RestartException(RestartFailure.Failed,
                    $"descriptor {forFd}: the TCP connection cannot leave repair mode: {Marshal.GetPInvokeErrorMessage(ErrnoCheck.LastErrno)}.");
            // Leaving repair mode clears SO_REUSEADDR; shutting down waits for the connection to be live.
            SocketOptionState.Apply(socket, options, forFd, beforeBind: true);
            SocketOptionState.Shutdown(socket, options, forFd);
        }
        _held.Clear();
    }
}

public static unsafe class TcpConnectionState
{
    private const int IPPROTO_TCP = 6, SOL_SOCKET = 1, SO_KEEPALIVE = 9;
    private const int TCP_NODELAY = 1, TCP_MAXSEG = 2, TCP_INFO = 11, TCP_REPAIR = 19, TCP_REPAIR_QUEUE = 20, TCP_QUEUE_SEQ = 21,
        TCP_REPAIR_OPTIONS = 22, TCP_TIMESTAMP = 24, TCP_REPAIR_WINDOW = 29;
    private const int TCP_RECV_QUEUE = 1, TCP_SEND_QUEUE = 2;
    private const int TCPOPT_MSS = 2, TCPOPT_WINDOW = 3, TCPOPT_SACK_PERM = 4, TCPOPT_TIMESTAMP = 8;
    private const int TCPI_OPT_TIMESTAMPS = 1, TCPI_OPT_SACK = 2, TCPI_OPT_WSCALE = 4;
    private const int SIOCINQ = 0x541B, SIOCOUTQ = 0x5411, MSG_PEEK = 2, MSG_DONTWAIT = 0x40;

    internal static bool SetRepair(int socket, bool on)
    {
        var value = on ? 1 : 0;
        return setsockopt(socket, IPPROTO_TCP, TCP_REPAIR, &value, sizeof(int)) == 0;
    }

    /// <summary>
    /// Reads a connection through <paramref name="socket"/>, the engine's copy of it, which is put in
    /// repair mode and handed to <paramref name="hold"/> (the connection stays in repair mode until
    /// the checkpoint is over).
    /// </summary>
    public static TcpConnectionRecord Capture(int pid, int fd, int socket, TcpRepairHold hold)
    {
        if (!SetRepair(socket, true))
        {
            var errno = ErrnoCheck.LastErrno;
            close(socket);
            throw new UnsupportedStateException(pid,
                $"descriptor {fd} is a TCP connection, which needs TCP_REPAIR to be saved: {Marshal.GetPInvokeErrorMessage(errno)} (CAP_NET_ADMIN is needed)");
        }
        hold.Add(socket);
        var (sendSequence, sendQueue) = Queue(socket, TCP_SEND_QUEUE, SIOCOUTQ);
        var (receiveSequence, receiveQueue) = Queue(socket, TCP_RECV_QUEUE, SIOCINQ);
        Select(socket, 0);
        var info = stackalloc byte[232];
        var infoLength = 232;
        getsockopt(socket, IPPROTO_TCP, TCP_INFO, info, &infoLength);
        var window = stackalloc uint[5];
        var windowLength = 20;
        var hasWindow = getsockopt(socket, IPPROTO_TCP, TCP_REPAIR_WINDOW, window, &windowLength) == 0;
        return new TcpConnectionRecord
        {
            SendSequence = sendSequence,
            ReceiveSequence = receiveSequence,
            SendQueue = sendQueue,
            ReceiveQueue = receiveQueue,
            Mss = SocketOption.Get(socket, IPPROTO_TCP, TCP_MAXSEG),
            Timestamps = (info[5] & TCPI_OPT_TIMESTAMPS) != 0,
            Sack = (info[5] & TCPI_OPT_SACK) != 0,
            WindowScaling = (info[5] & TCPI_OPT_WSCALE) != 0,
            SendWindowScale = info[6] & 0xf,
            ReceiveWindowScale = info[6] >> 4,
            Timestamp = (uint)SocketOption.Get(socket, IPPROTO_TCP, TCP_TIMESTAMP),
            Window = hasWindow ? new ReadOnlySpan<uint>(window, 5).ToArray() : [],
            NoDelay = SocketOption.Get(socket, IPPROTO_TCP, TCP_NODELAY) == 1,
            KeepAlive = SocketOption.Get(socket, SOL_SOCKET, SO_KEEPALIVE) == 1,
        };
    }

    /// <summary>The sequence number at the start of one queue's data (repair mode), and that data.</summary>
    private static (uint Sequence, byte[] Data) Queue(int socket, int queue, int sizeRequest)
    {
        Select(socket, queue);
        var sequence = (uint)SocketOption.Get(socket, IPPROTO_TCP, TCP_QUEUE_SEQ);
        int size = 0;
        ioctl(socket, sizeRequest, &size);
        var data = new byte[Math.Max(0, size)];
        if (size > 0)
            fixed (byte* d = data)
            {
                var got = recv(socket, d, (nuint)size, MSG_PEEK | MSG_DONTWAIT);
                if (got != size) throw new NativeException("reading a TCP queue in repair mode", (int)Errno.EIO);
            }
        // A queue's sequence number is that of the byte after its data (next to send, next to
        // receive): the data starts that many bytes before.
        return (unchecked(sequence - (uint)size), data);
    }

    private static void Select(int socket, int queue) => setsockopt(socket, IPPROTO_TCP, TCP_REPAIR_QUEUE, &queue, sizeof(int));

    /// <summary>
    /// Rebuilds the connection in repair mode, where connect() sends nothing and only sets the
    /// state: sequence numbers, addresses, options, the queued bytes, the window and the timestamp
    /// clock. It stays in repair mode until <see cref="RestoredConnections.Release"/>. The peer sees the same connection go on.
    /// </summary>
    public static void Restore(int socket, TcpConnectionRecord t, byte[] local, byte[] peer, string describe)
    {
        Check(SetRepair(socket, true) ? 0 : -1, "TCP_REPAIR", describe);
        SetSequence(socket, TCP_RECV_QUEUE, t.ReceiveSequence, describe);
        SetSequence(socket, TCP_SEND_QUEUE, t.SendSequence, describe);
        fixed (byte* a = local) Check(bind(socket, a, local.Length), "bind", describe);
        fixed (byte* a = peer) Check(connect(socket, a, peer.Length), "connect", describe);

        var options = new List<(int Code, int Value)> { (TCPOPT_MSS, t.Mss) };
        if (t.WindowScaling) options.Add((TCPOPT_WINDOW, t.SendWindowScale | (t.ReceiveWindowScale << 16)));
        if (t.Sack) options.Add((TCPOPT_SACK_PERM, 0));
        if (t.Timestamps) options.Add((TCPOPT_TIMESTAMP, 0));
        var packed = stackalloc int[options.Count * 2];
        for (var i = 0; i < options.Count; i++) (packed[2 * i], packed[2 * i + 1]) = options[i];
        Check(setsockopt(socket, IPPROTO_TCP, TCP_REPAIR_OPTIONS, packed, options.Count * 8), "TCP_REPAIR_OPTIONS", describe);
        if (t.Timestamps)
        {
            var timestamp = t.Timestamp;
            Check(setsockopt(socket, IPPROTO_TCP, TCP_TIMESTAMP, &timestamp, sizeof(uint)), "TCP_TIMESTAMP", describe);
        }

        Refill(socket, TCP_RECV_QUEUE, t.ReceiveQueue, describe);
        Refill(socket, TCP_SEND_QUEUE, t.SendQueue, describe);
        Select(socket, 0);
        if (t.Window.Length == 5)
            fixed (uint* w = t.Window) Check(setsockopt(socket, IPPROTO_TCP, TCP_REPAIR_WINDOW, w, 20), "TCP_REPAIR_WINDOW", describe);
        var one = 1;
        if (t.NoDelay) setsockopt(socket, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(int));
        if (t.KeepAlive) setsockopt(socket, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(int));
    }

    private static void SetSequence(int socket, int queue, uint sequence, string describe)
    {
        Select(socket, queue);
        Check(setsockopt(socket, IPPROTO_TCP, TCP_QUEUE_SEQ, &sequence, sizeof(uint)), "TCP_QUEUE_SEQ", describe);
    }

    private static void Refill(int socket, int queue, byte[] data, string describe)
    {
        if (data.Length == 0) return;
        Select(socket, queue);
        fixed (byte* d = data)
        {
            for (var done = 0; done < data.Length;)
            {
                var n = send(socket, d + done, (nuint)(data.Length - done), 0);
                if (n <= 0) throw new RestartException(RestartFailure.Failed, $"cannot put back the bytes queued on {describe}: {Marshal.GetPInvokeErrorMessage(ErrnoCheck.LastErrno)}.");
                done += (int)n;
            }
        }
    }

    private static void Check(int result, string what, string describe)
    {
        if (result != 0)
            throw new RestartException(RestartFailure.Failed,
                $"cannot rebuild {describe} ({what}): {Marshal.GetPInvokeErrorMessage(ErrnoCheck.LastErrno)}.");
    }
}
