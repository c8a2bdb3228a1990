namespace CrCheckpoint.Engine.Schema;

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

public enum FileDescriptorKind
{
    RegularFile,
    /// <summary>A regular file unlinked while open: its contents travel in a FileContent record.</summary>
    UnlinkedFile,
    Directory,
    /// <summary>A memfd (shared memory with a descriptor): restored as the same object its mappings use.</summary>
    Memfd,
    /// <summary>/dev/null, /dev/zero, /dev/random, /dev/urandom, /dev/full: reopened by path.</summary>
    Device,
    Terminal,
    Pipe,
    Fifo,
    Socket,
    /// <summary>A unix socket listening on a name (a path, or the abstract namespace): bound and listening again at restart.</summary>
    ListeningSocket,
    /// <summary>An internet socket (TCP, UDP, raw; IPv4 or IPv6): listening or unconnected ones are bound and listen again, an established TCP connection is rebuilt through TCP_REPAIR.</summary>
    InetSocket,
    /// <summary>A unix socket neither bound, connected nor listening (since 1.2): made anew with its options.</summary>
    UnixSocket,
    EventFd,
    Epoll,
    TimerFd,
    SignalFd,
    Inotify,
    /// <summary>fanotify, userfaultfd, io_uring...: not saved yet.</summary>
    AnonymousInode,
    Other,
    /// <summary>A pidfd of a process of the checkpoint: opened again on the restarted process.</summary>
    PidFd,
    /// <summary>A symbolic link itself, open with O_PATH|O_NOFOLLOW (since 1.2): made again from its target when it was removed.</summary>
    Symlink,
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

/// <summary>Enough about a file for a restart to notice that it changed since the checkpoint.</summary>
public sealed class FileIdentity
{
    public ulong Device { get; init; }
    public ulong Inode { get; init; }
    public long Size { get; init; }
    public long ModifiedSeconds { get; init; }
    public long ModifiedNanoseconds { get; init; }
    public uint Mode { get; init; }
    /// <summary>Owner and group; since 1.2 (a file the restart makes anew gets them back).</summary>
    public uint? Owner { get; init; }
    public uint? Group { get; init; }
    /// <summary>For a device file, the device it is (st_rdev): a removed device node is made again from it; since 1.2.</summary>
    public ulong? SpecialDevice { get; init; }

    public static FileIdentity From(in Native.Stat st) => new()
    {
        Device = st.Dev, Inode = st.Ino, Size = st.Size, ModifiedSeconds = st.MtimeSec,
        ModifiedNanoseconds = st.MtimeNsec, Mode = st.Mode, Owner = st.Uid, Group = st.Gid,
        SpecialDevice = st.FileType is Native.Stat.S_IFCHR or Native.Stat.S_IFBLK ? st.Rdev : null,
    };

    public bool SameContentAs(FileIdentity other) =>
        Device == other.Device && Inode == other.Inode && Size == other.Size &&
        ModifiedSeconds == other.ModifiedSeconds && ModifiedNanoseconds == other.ModifiedNanoseconds;
}
