namespace CrCheckpoint.Engine.Schema;

/// <summary>Metadata of a SocketData record: what waited in one unix socket's receive queue, oldest first.</summary>
public sealed class SocketDataRecord
{
    public ulong Inode { get; init; }
    public int SocketType { get; init; }
    /// <summary>For datagram and seqpacket sockets: the length of each message, in order (the data is them back to back).</summary>
    public int[] MessageLengths { get; init; } = [];
    /// <summary>Pipe ends in flight (SCM_RIGHTS) with the messages they ride on; null when none.</summary>
    public List<InFlightDescriptors>? InFlight { get; init; }
}

/// <summary>The descriptors that ride on one queued message (by its place in the queue), in the order they were sent.</summary>
public sealed class InFlightDescriptors
{
    public int Message { get; init; }
    public List<InFlightPipeEnd> Pipes { get; init; } = [];
}

/// <summary>One end of a pipe sent with SCM_RIGHTS and not received yet: the pipe's inode, which end, its open flags.</summary>
public sealed class InFlightPipeEnd
{
    public ulong Inode { get; init; }
    public bool ReadEnd { get; init; }
    public int Flags { get; init; }
}
