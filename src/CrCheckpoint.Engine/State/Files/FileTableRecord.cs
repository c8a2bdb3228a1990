using CrCheckpoint.Engine.State.Process;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>The FileTable record: every open descriptor of one process.</summary>
public sealed class FileTableRecord
{
    public int Pid { get; init; }
    public List<FileDescriptorRecord> Descriptors { get; init; } = [];
}

public sealed class FileDescriptorRecord
{
    public int Fd { get; init; }
    public FileDescriptorKind Kind { get; init; }
    /// <summary>The path (without " (deleted)"), or the kernel's name such as "pipe:[1234]".</summary>
    public string Path { get; init; } = "";
    /// <summary>open(2) flags as /proc/PID/fdinfo shows them (access mode, O_APPEND, O_NONBLOCK...).</summary>
    public int Flags { get; init; }
    public bool CloseOnExec { get; init; }
    /// <summary>The path was removed while the descriptor stayed open (a directory is then made anew and removed again); since 1.2.</summary>
    public bool Deleted { get; init; }
    public long Position { get; init; }
    public FileIdentity? Identity { get; init; }
    /// <summary>Inode number of a pipe or socket, which pairs descriptors that share one.</summary>
    public ulong Inode { get; init; }
    /// <summary>Key of the FileContent record with the file's bytes (unlinked files).</summary>
    public string? SavedFileKey { get; init; }
    /// <summary>
    /// The open file description: descriptors (in one process or several) with the same value share
    /// one offset and one set of status flags, and come back sharing them. "PID:FD" of the first holder.
    /// </summary>
    public string? Description { get; set; }
    /// <summary>For a unix socket: SOCK_STREAM (1), SOCK_DGRAM (2) or SOCK_SEQPACKET (5).</summary>
    public int SocketType { get; init; }
    /// <summary>For a unix socket of a socketpair: the inode of the other end, which must be in the checkpoint too.</summary>
    public ulong PeerInode { get; init; }

    /// <summary>For a listening unix socket: the name it is bound to, a path or "@name" in the abstract namespace.</summary>
    public string? SocketName { get; init; }
    /// <summary>For a listening unix socket: listen()'s backlog.</summary>
    public int ListenBacklog { get; init; }
    /// <summary>For a listening unix socket: connections that waited to be accepted; they cannot be carried over.</summary>
    public int PendingConnections { get; init; }
    /// <summary>For a listening unix socket with a path: the socket file's permission bits, owner and group.</summary>
    public uint SocketFileMode { get; init; }
    public uint SocketFileOwner { get; init; }
    public uint SocketFileGroup { get; init; }

    /// <summary>For a symbolic link open with O_PATH|O_NOFOLLOW: what it points to; since 1.2.</summary>
    public string? SymlinkTarget { get; init; }

    public InetSocketRecord? Inet { get; init; }
    /// <summary>For a unix or internet socket: the options, filter and shutdown state that differ from a new socket's.</summary>
    public SocketOptionsRecord? SocketOptions { get; init; }
    public EventFdRecord? EventFd { get; init; }
    public EpollRecord? Epoll { get; init; }
    public TimerFdRecord? Timer { get; init; }
    public SignalFdRecord? SignalFd { get; init; }
    public InotifyRecord? Inotify { get; init; }
    /// <summary>A pidfd: the process it refers to; since 1.2.</summary>
    public PidFdRecord? PidFd { get; init; }

    /// <summary>Locks held through this descriptor's open file description (fdinfo "lock:" lines); since 1.2.</summary>
    public List<FileLockRecord>? Locks { get; set; }
    /// <summary>A lease held through it (F_GETLEASE): "read" or "write"; since 1.2.</summary>
    public string? Lease { get; set; }
    /// <summary>Who gets SIGIO/SIGURG for it (F_GETOWN_EX) and with which signal (F_GETSIG); since 1.2.</summary>
    public FileOwnerRecord? Owner { get; set; }

    public bool Readable => (Flags & 3) is 0 or 2;
    public bool Writable => (Flags & 3) is 1 or 2;
}

/// <summary>A byte-range lock (POSIX or OFD, fcntl) or a whole-file flock(2) lock.</summary>
public sealed class FileLockRecord
{
    /// <summary>"posix" (owned by the process), "ofd" (owned by the open file description) or "flock".</summary>
    public string Kind { get; init; } = "";
    /// <summary>"read" (shared) or "write" (exclusive).</summary>
    public string Type { get; init; } = "";
    public long Start { get; init; }
    /// <summary>Bytes locked; 0 means to the end of the file, however long it grows.</summary>
    public long Length { get; init; }
}

/// <summary>The owner of an open file description: the target of its SIGIO and SIGURG.</summary>
public sealed class FileOwnerRecord
{
    /// <summary>F_OWNER_TID (0), F_OWNER_PID (1) or F_OWNER_PGRP (2).</summary>
    public int Type { get; init; }
    /// <summary>The thread, process or process group id, as it was at the checkpoint.</summary>
    public int Pid { get; init; }
    /// <summary>F_SETSIG's signal; 0 for the default SIGIO.</summary>
    public int Signal { get; init; }
}

/// <summary>Metadata of a FileContent record; its data is the whole file.</summary>
public sealed class FileContentRecord
{
    public string Key { get; init; } = "";
    public string Path { get; init; } = "";
    public FileIdentity Identity { get; init; } = new();
    /// <summary>Why the file travels: "unlinked", "save-exe", "save-private", "save-shared", or "shmem" for
    /// shared memory (memfd, MAP_SHARED|MAP_ANONYMOUS, System V) which is restored as one object.</summary>
    public string Reason { get; init; } = "";
    /// <summary>
    /// For sparse objects: pairs [offset, length] in bytes of the ranges that hold data; the data is
    /// those ranges back to back and the rest of the file (identity.size) is holes. Absent: the whole file.
    /// </summary>
    public long[][]? Runs { get; init; }
    /// <summary>Shared memory only: the seals (F_GET_SEALS) of the object; null in older files.</summary>
    public int? Seals { get; init; }
    /// <summary>Shared memory only: the object's owner and group, given back with its mode; null in older files.</summary>
    public uint? Owner { get; init; }
    public uint? Group { get; init; }
}

/// <summary>Metadata of a PipeData record: the bytes in flight in one pipe, oldest first, as its data.</summary>
public sealed class PipeDataRecord
{
    public ulong Inode { get; init; }
    /// <summary>The pipe's capacity (F_GETPIPE_SZ), given back at restart.</summary>
    public int Capacity { get; init; }
}

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
