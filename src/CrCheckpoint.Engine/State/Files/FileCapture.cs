using CrCheckpoint.Engine.Proc;
using CrCheckpoint.Engine.State.Memory;
using CrCheckpoint.Engine.State.Process;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>Classifies a process's descriptors; refuses those that cannot be saved yet.</summary>
public static class FileCapture
{
    private const int O_CLOEXEC = 0x80000;

    /// <param name="connections">Where established TCP connections are held in repair mode for the checkpoint; null for a look that must not touch them.</param>
    public static (FileTableRecord Table, List<FileToSave> Files) Capture(int pid, TcpRepairHold? connections = null)
    {
        var descriptors = new List<FileDescriptorRecord>();
        var files = new List<FileToSave>();
        Dictionary<ulong, UnixSocketInfo>? sockets = null;
        var open = ProcFds.Read(pid);
        foreach (var d in open)
        {
            var record = Describe(pid, d);
            if (record.Kind == FileDescriptorKind.Socket)
            {
                sockets ??= UnixSocketDiag.Dump();
                sockets.TryGetValue(record.Inode, out var unix);
                var options = SocketOptionState.Capture(pid, d.Fd, unix);
                if (unix is { PeerInode: not 0, Name: null or "" } || StandaloneUnixSocket.IsOrphanedPairEnd(pid, d.Fd, unix))
                {
                    descriptors.Add(new FileDescriptorRecord
                    {
                        Fd = record.Fd, Kind = record.Kind, Path = record.Path, Flags = record.Flags, CloseOnExec = record.CloseOnExec,
                        Identity = record.Identity, Inode = record.Inode, SocketType = unix!.Type, PeerInode = unix.PeerInode,
                        SocketOptions = options,
                    });
                    continue;
                }
                if (StandaloneUnixSocket.Is(unix))
                {
                    descriptors.Add(StandaloneUnixSocket.Record(record, unix!, options));
                    continue;
                }
                if ((unix is { IsListening: true } || StandaloneUnixSocket.IsBound(unix)) && unix!.Name is { Length: > 0 } name)
                {
                    descriptors.Add(Listening(pid, record, unix, name, options));
                    continue;
                }
                if (unix is null && InetSocketState.Capture(pid, d.Fd, record.Inode, connections) is { } inet)
                {
                    descriptors.Add(new FileDescriptorRecord
                    {
                        Fd = record.Fd, Kind = FileDescriptorKind.InetSocket, Path = record.Path, Flags = record.Flags,
                        CloseOnExec = record.CloseOnExec, Identity = record.Identity, Inode = record.Inode, Inet = inet, SocketOptions = options,
                    });
                    continue;
                }
                throw new UnsupportedStateException(pid,
                    $"descriptor {d.Fd} ({d.Target}) is a socket this version cannot checkpoint yet: a connection through a named unix socket, a bound datagram unix socket, or a socket of another family");
            }
            if (record.Kind == FileDescriptorKind.AnonymousInode && KernelObject(pid, record) is { } kernelObject)
            {
                descriptors.Add(kernelObject);
                continue;
            }
            // Removed from the path it was opened by, yet linked under another name: the restart could
            // reopen neither, and a copy would no longer be the file the other name shows.
            if (record.Kind == FileDescriptorKind.Symlink)
            {
                descriptors.Add(Symlink(pid, record));
                continue;
            }
            if (record.Kind == FileDescriptorKind.RegularFile && record.Deleted)
                throw new UnsupportedStateException(pid,
                    $"descriptor {d.Fd} ({record.Path}) was removed from that path but is still linked under another name, which this version cannot find; open it by its other name in the program, or checkpoint later");
            if (record.Kind is FileDescriptorKind.Socket or FileDescriptorKind.AnonymousInode or FileDescriptorKind.Other)
                throw new UnsupportedStateException(pid,
                    $"descriptor {d.Fd} ({d.Target}) is a {Describe(record.Kind)}, which this version cannot checkpoint yet; close it in the program, or checkpoint another process");
            if (record.Kind == FileDescriptorKind.UnlinkedFile && record.Path.StartsWith("/memfd:", StringComparison.Ordinal) && record.Identity is { } memfd)
            {
                var key = MemoryCapture.ShmemKey(memfd);
                record = Clone(record, key, FileDescriptorKind.Memfd);
                if (files.All(f => f.Key != key))
                    files.Add(new FileToSave(key, record.Path, $"/proc/{pid}/fd/{d.Fd}", memfd, "shmem"));
            }
            else if (record.Kind == FileDescriptorKind.UnlinkedFile && record.Identity is { } id)
            {
                var key = $"{id.Device:x}:{id.Inode}";
                record = Clone(record, key);
                if (files.All(f => f.Key != key))
                    files.Add(new FileToSave(key, record.Path, $"/proc/{pid}/fd/{d.Fd}", id, "unlinked"));
            }
            descriptors.Add(record);
        }
        DescriptionState.Capture(pid, descriptors, open.ToDictionary(d => d.Fd));
        return (new FileTableRecord { Pid = pid, Descriptors = descriptors }, files);
    }

    /// <summary>
    /// A server's listening socket: its name, backlog and socket file come back at restart. A name
    /// relative to the directory the process bound it in is taken as relative to its current one.
    /// </summary>
    private static unsafe FileDescriptorRecord Listening(int pid, FileDescriptorRecord record, UnixSocketInfo unix, string name, SocketOptionsRecord? options)
    {
        Native.Stat st = default;
        if (!name.StartsWith('@'))
        {
            if (!name.StartsWith('/')) name = Path.Combine(ProcFds.ReadLink($"/proc/{pid}/cwd") ?? "/", name);
            if (Native.Interop.fstatat(Native.Interop.AT_FDCWD, $"/proc/{pid}/root{name}", &st, Native.Interop.AT_SYMLINK_NOFOLLOW) != 0)
                throw new UnsupportedStateException(pid,
                    $"descriptor {record.Fd} listens on {name}, which no longer exists (it was removed while the socket stayed open); this version cannot checkpoint such a socket");
        }
        return new FileDescriptorRecord
        {
            Fd = record.Fd, Kind = unix.IsListening ? FileDescriptorKind.ListeningSocket : FileDescriptorKind.UnixSocket, Path = record.Path, Flags = record.Flags,
            CloseOnExec = record.CloseOnExec, Identity = record.Identity, Inode = record.Inode, SocketType = unix.Type,
            SocketName = name, ListenBacklog = (int)unix.Backlog, PendingConnections = (int)unix.ReceiveQueue,
            SocketFileMode = st.Mode & 0xfff, SocketFileOwner = st.Uid, SocketFileGroup = st.Gid, SocketOptions = options,
        };
    }

    /// <summary>An eventfd, epoll, timerfd, signalfd or inotify with the state fdinfo shows; null for the kinds not saved yet.</summary>
    private static FileDescriptorRecord? KernelObject(int pid, FileDescriptorRecord r)
    {
        var kind = r.Path switch
        {
            "anon_inode:[eventfd]" => FileDescriptorKind.EventFd,
            "anon_inode:[eventpoll]" => FileDescriptorKind.Epoll,
            "anon_inode:[timerfd]" => FileDescriptorKind.TimerFd,
            "anon_inode:[signalfd]" => FileDescriptorKind.SignalFd,
            "anon_inode:inotify" => FileDescriptorKind.Inotify,
            _ when PidFdState.IsPidFd(r.Path) => FileDescriptorKind.PidFd,
            _ => (FileDescriptorKind?)null,
        };
        if (kind is null) return null;
        var info = FdInfo.Read(pid, r.Fd);
        return new FileDescriptorRecord
        {
            Fd = r.Fd, Kind = kind.Value, Path = r.Path, Flags = r.Flags, CloseOnExec = r.CloseOnExec, Identity = r.Identity, Inode = r.Inode,
            EventFd = kind == FileDescriptorKind.EventFd ? EventFdState.Capture(info) : null,
            Epoll = kind == FileDescriptorKind.Epoll ? EpollState.Capture(pid, r.Fd, info) : null,
            Timer = kind == FileDescriptorKind.TimerFd ? TimerFdState.Capture(info) : null,
            SignalFd = kind == FileDescriptorKind.SignalFd ? SignalFdState.Capture(info) : null,
            Inotify = kind == FileDescriptorKind.Inotify ? InotifyState.Capture(pid, r.Fd, info) : null,
            PidFd = kind == FileDescriptorKind.PidFd ? PidFdState.Capture(pid, r.Fd, info) : null,
        };
    }

    /// <summary>An O_PATH descriptor of a symbolic link: what it points to, read through the engine's own copy of it.</summary>
    private static unsafe FileDescriptorRecord Symlink(int pid, FileDescriptorRecord r)
    {
        var copy = ForeignDescriptor.Copy(pid, r.Fd);
        try
        {
            var buffer = stackalloc byte[4096];
            var n = Native.Interop.readlinkat(copy, "", buffer, 4096);
            if (n < 0) throw new UnsupportedStateException(pid, $"descriptor {r.Fd} ({r.Path}) is a symbolic link whose target cannot be read");
            return new FileDescriptorRecord
            {
                Fd = r.Fd, Kind = r.Kind, Path = r.Path, Flags = r.Flags, CloseOnExec = r.CloseOnExec, Deleted = r.Deleted,
                Identity = r.Identity, Inode = r.Inode, SymlinkTarget = System.Text.Encoding.UTF8.GetString(buffer, (int)n),
            };
        }
        finally { Native.Interop.close(copy); }
    }

    private static string Describe(FileDescriptorKind kind) => kind switch
    {
        FileDescriptorKind.Socket => "socket",
        FileDescriptorKind.AnonymousInode => "kernel object without a path (fanotify, userfaultfd or io_uring)",
        _ => "kind of file",
    };

    private static FileDescriptorRecord Clone(FileDescriptorRecord r, string key, FileDescriptorKind? kind = null) => new()
    {
        Fd = r.Fd, Kind = kind ?? r.Kind, Path = r.Path, Flags = r.Flags, CloseOnExec = r.CloseOnExec,
        Position = r.Position, Identity = r.Identity, Inode = r.Inode, SavedFileKey = key,
    };

    public static FileDescriptorRecord Describe(int pid, OpenDescriptor d)
    {
        var kind = Classify(d, out var path, out var inode);
        return new FileDescriptorRecord
        {
            Fd = d.Fd,
            Kind = kind,
            Path = path,
            Flags = d.Flags & ~O_CLOEXEC,
            CloseOnExec = (d.Flags & O_CLOEXEC) != 0,
            Deleted = d.Target.StartsWith('/') && d.Target.EndsWith(" (deleted)", StringComparison.Ordinal),
            Position = d.Position,
            Identity = d.Stat is { } st ? FileIdentity.From(st) : null,
            Inode = inode,
        };
    }

    private static FileDescriptorKind Classify(OpenDescriptor d, out string path, out ulong inode)
    {
        var target = d.Target;
        path = target;
        inode = d.Stat?.Ino ?? 0;
        if (target.StartsWith("pipe:[", StringComparison.Ordinal)) return FileDescriptorKind.Pipe;
        if (target.StartsWith("socket:[", StringComparison.Ordinal)) return FileDescriptorKind.Socket;
        if (target.StartsWith("anon_inode:", StringComparison.Ordinal)) return FileDescriptorKind.AnonymousInode;
        if (!target.StartsWith('/')) return FileDescriptorKind.Other;

        var deleted = target.EndsWith(" (deleted)", StringComparison.Ordinal);
        if (deleted) path = target[..^" (deleted)".Length];
        var type = d.Stat?.FileType ?? 0;
        switch (type)
        {
            case Native.Stat.S_IFREG:
                // A file still linked elsewhere under another name reads as deleted too; nlink tells.
                return deleted && (d.Stat?.Nlink ?? 0) == 0 ? FileDescriptorKind.UnlinkedFile : FileDescriptorKind.RegularFile;
            case Native.Stat.S_IFDIR: return FileDescriptorKind.Directory;
            case Native.Stat.S_IFLNK: return FileDescriptorKind.Symlink;
            case Native.Stat.S_IFIFO: return FileDescriptorKind.Fifo;
            case Native.Stat.S_IFSOCK: return FileDescriptorKind.Socket;
            case Native.Stat.S_IFCHR:
                var major = (uint)((d.Stat!.Value.Rdev >> 8) & 0xfff);
                // 136-143: pseudo-terminal slaves; 4: virtual consoles; 5: /dev/tty, /dev/console, ptmx.
                if (major is >= 136 and <= 143 or 4 || (major == 5 && !path.EndsWith("ptmx", StringComparison.Ordinal)))
                    return FileDescriptorKind.Terminal;
                // The memory devices (null, zero, full, random, urandom) hold nothing, whatever node names them.
                var minor = (uint)(d.Stat!.Value.Rdev & 0xff);
                return path is "/dev/null" or "/dev/zero" or "/dev/random" or "/dev/urandom" or "/dev/full" || (major == 1 && minor is 3 or 5 or 7 or 8 or 9)
                    ? FileDescriptorKind.Device : FileDescriptorKind.Other;
            default:
                return FileDescriptorKind.Other;
        }
    }
}
