namespace CrCheckpoint.Engine.State.Files;

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
