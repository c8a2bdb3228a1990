namespace CrCheckpoint.Engine.Schema;

/// <summary>
/// A TCP, UDP or raw socket (IPv4 or IPv6): a listening TCP socket, an established TCP connection, a
/// UDP or raw socket (bound, perhaps connected to a peer: a datagram "connection" is only a default
/// address; a raw socket's port is its protocol), or one not yet used. Addresses are "address:port" (IPv6 in brackets).
/// </summary>
public sealed class InetSocketRecord
{
    public int Family { get; init; }
    public int Type { get; init; }
    public int Protocol { get; init; }
    public string? Local { get; init; }
    public string? Peer { get; init; }
    public bool Listening { get; init; }
    public int Backlog { get; init; }
    /// <summary>Connections that waited to be accepted (TCP) or bytes that waited to be read (UDP); not carried over.</summary>
    public int Waiting { get; init; }
    public bool ReuseAddress { get; init; }
    public bool ReusePort { get; init; }
    public bool V6Only { get; init; }
    /// <summary>For an established TCP connection: its state from TCP_REPAIR.</summary>
    public TcpConnectionRecord? Tcp { get; init; }
}

/// <summary>
/// An established TCP connection as TCP_REPAIR shows it: the sequence numbers of both directions,
/// the bytes queued each way (sent but not yet acknowledged; received but not yet read), the
/// options agreed with the peer, the window and the timestamp clock.
/// </summary>
public sealed class TcpConnectionRecord
{
    public uint SendSequence { get; init; }
    public uint ReceiveSequence { get; init; }
    public byte[] SendQueue { get; init; } = [];
    public byte[] ReceiveQueue { get; init; } = [];
    public int Mss { get; init; }
    public bool Timestamps { get; init; }
    public bool Sack { get; init; }
    public bool WindowScaling { get; init; }
    public int SendWindowScale { get; init; }
    public int ReceiveWindowScale { get; init; }
    public uint Timestamp { get; init; }
    /// <summary>struct tcp_repair_window: snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup.</summary>
    public uint[] Window { get; init; } = [];
    public bool NoDelay { get; init; }
    public bool KeepAlive { get; init; }
}

/// <summary>
/// What a program set on one socket beyond its address: the socket options that differ from those
/// of a new socket of the same family, type and protocol, a classic BPF filter, and which
/// directions were shut down.
/// </summary>
public sealed class SocketOptionsRecord
{
    public List<SocketOptionValue> Values { get; init; } = [];
    /// <summary>An attached classic BPF filter (SO_ATTACH_FILTER): its struct sock_filter blocks, 8 bytes each.</summary>
    public byte[]? Filter { get; init; }
    /// <summary>The socket's shutdown state: 1 no more receiving, 2 no more sending, 3 both.</summary>
    public int Shutdown { get; init; }
}

/// <summary>An eventfd: its counter and whether it counts as a semaphore.</summary>
public sealed class EventFdRecord
{
    public ulong Count { get; init; }
    public bool Semaphore { get; init; }
}

/// <summary>An epoll instance: the descriptors it watches, each with its event mask (EPOLLET and the other flags included) and its data.</summary>
public sealed class EpollRecord
{
    public List<EpollWatchRecord> Watches { get; init; } = [];
}

public sealed class EpollWatchRecord
{
    /// <summary>The watched descriptor's number in the process that holds the epoll.</summary>
    public int Fd { get; init; }
    public uint Events { get; init; }
    public ulong Data { get; init; }
}

/// <summary>
/// A timerfd: its clock, the time left until it fires next and its period (seconds and
/// nanoseconds), and the expirations that happened but were not read yet.
/// </summary>
public sealed class TimerFdRecord
{
    public int Clock { get; init; }
    public ulong Ticks { get; init; }
    /// <summary>timerfd_settime's flags (TFD_TIMER_ABSTIME 1, TFD_TIMER_CANCEL_ON_SET 2), as fdinfo shows them.</summary>
    public int SettimeFlags { get; init; }
    public long[] Value { get; init; } = [0, 0];
    public long[] Interval { get; init; } = [0, 0];
}

/// <summary>A signalfd: the signals it reports. The signals themselves wait in the process's pending sets, which are saved with its signal state.</summary>
public sealed class SignalFdRecord
{
    public ulong Mask { get; init; }
}

/// <summary>An inotify instance: its watches, each with the watch descriptor the program knows it by.</summary>
public sealed class InotifyRecord
{
    public List<InotifyWatchRecord> Watches { get; init; } = [];
    /// <summary>Bytes of events that waited to be read at the checkpoint; they are not carried over.</summary>
    public int PendingBytes { get; init; }
}

public sealed class InotifyWatchRecord
{
    public int Wd { get; init; }
    public string Path { get; init; } = "";
    public uint Mask { get; init; }
}

/// <summary>A pidfd (pidfd_open, clone's CLONE_PIDFD): the process it refers to, by its id at the checkpoint.</summary>
public sealed class PidFdRecord
{
    public int Pid { get; init; }
    /// <summary>PIDFD_THREAD: it refers to one thread, not the process.</summary>
    public bool Thread { get; init; }
}

/// <summary>One option as getsockopt gave it: level, option number, and its bytes.</summary>
public sealed class SocketOptionValue
{
    /// <summary>The option's name ("SO_MARK", "TCP_KEEPIDLE"), for messages.</summary>
    public string Name { get; init; } = "";
    public int Level { get; init; }
    public int Option { get; init; }
    public byte[] Value { get; init; } = [];
}
