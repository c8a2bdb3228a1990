using CrCheckpoint.Engine.Image;
using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Restart;
using CrCheckpoint.Engine.State.Memory;
using Microsoft.Win32.SafeHandles;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>Where a descriptor whose pipe or terminal is gone goes instead (cr_restart: the caller's streams).</summary>
public sealed record StandardStreams(string? Input, string? Output, string? Error);

/// <summary>
/// The engine's side of every open file a restart gives back. Each open file description is
/// opened (or created: pipes, unlinked files) once, here, with its flags and offset; every
/// descriptor that shared it, in whatever process, pulls in this one with pidfd_getfd, so they
/// share it again. Pipes between processes of the checkpoint are made anew and refilled with the
/// bytes that were in flight; listening sockets listen again on their names. The engine closes all its copies when the restart is done, or
/// nobody would ever see end-of-file.
/// </summary>
public sealed class OpenFileTable : IDisposable
{
    private const int OpenFlagsToDrop = O_CREAT | O_TRUNC | O_EXCL | O_NOCTTY | O_CLOEXEC;
    private readonly Dictionary<string, SafeFileHandle> _descriptions = new();
    private readonly Dictionary<(ulong Inode, bool ReadEnd), SafeFileHandle> _pipes = new();
    private readonly Dictionary<ulong, SafeFileHandle> _fifos = new();
    private readonly Dictionary<string, string> _deleted = new();
    private readonly Dictionary<ulong, SafeFileHandle> _sockets = new();
    private readonly ContextImage _image;
    private readonly PathRelocator _relocate;
    private readonly StandardStreams _streams;
    private readonly SharedMemoryObjects _shared;
    private readonly MessageLog _log;
    private readonly HashSet<(ulong, bool)> _pipeEnds;
    private readonly Dictionary<string, int> _engineFds = new();
    private readonly HashSet<(ulong, bool)> _pipeClaimed = [];
    private readonly HashSet<string> _replaced = [];
    private readonly HashSet<int> _threadIds;

    public OpenFileTable(ContextImage image, PathRelocator relocate, StandardStreams streams, SharedMemoryObjects shared, MessageLog log)
    {
        _image = image;
        _relocate = relocate;
        _streams = streams;
        _shared = shared;
        _log = log;
        _pipeEnds = image.Processes.SelectMany(p => p.Files.Descriptors)
            .Where(d => d.Kind == FileDescriptorKind.Pipe)
            .SelectMany(d => new[] { (d.Inode, true), (d.Inode, false) }.Where(e => e.Item2 ? d.Readable : d.Writable))
            .Concat(image.Sockets.SelectMany(s => s.Record.InFlight ?? []).SelectMany(m => m.Pipes).Select(e => (e.Inode, e.ReadEnd)))
            .ToHashSet();
        _threadIds = image.Processes.SelectMany(p => p.Process.ThreadIds).ToHashSet();
    }

    /// <summary>The TCP connections rebuilt so far, in repair mode until all are.</summary>
    public RestoredConnections Connections { get; } = new();

    /// <summary>The epolls whose watches were added already (by the first process that holds each).</summary>
    public HashSet<string> FilledEpolls { get; } = [];

    /// <summary>Old pid to new pid of every process of the checkpoint, once they are all created: owners of descriptions are mapped through it.</summary>
    public IReadOnlyDictionary<int, int> Pids { get; set; } = new Dictionary<int, int>();

    /// <summary>The id a process of the context has after the restart (pidfds are opened on it); null when it is not in the context.</summary>
    public int? RestartedPid(int pid) => Pids.TryGetValue(pid, out var now) ? now : null;

    /// <summary>The engine descriptor that descriptor <paramref name="d"/> of <paramref name="process"/> must become.</summary>
    public int EngineFd(ProcessImage process, FileDescriptorRecord d)
    {
        var key = Key(process, d);
        if (_engineFds.TryGetValue(key, out var known)) return known;
        var fd = Create(process, d);
        _engineFds[key] = fd;
        // Once per description, whichever process and descriptor comes first: they all share it.
        if (!_replaced.Contains(key)) DescriptionState.Apply(fd, d, OwnerPid);
        return fd;
    }

    /// <summary>Whether the descriptor now points somewhere else than it did (a pipe whose other end is gone, a redirected stream).</summary>
    public bool IsReplaced(ProcessImage process, FileDescriptorRecord d) => _replaced.Contains(Key(process, d));

    /// <summary>Whether the descriptor is the one its description was first seen through at the checkpoint.</summary>
    public static bool IsFirstHolder(ProcessImage process, FileDescriptorRecord d) =>
        d.Description is null || d.Description == $"{process.Pid}:{d.Fd}";

    /// <summary>The process a path under /proc/PID is about; null for any other path.</summary>
    public static int? ProcessOf(string path)
    {
        if (!path.StartsWith("/proc/", StringComparison.Ordinal)) return null;
        var end = path.IndexOf('/', 6);
        return int.TryParse(end < 0 ? path[6..] : path[6..end], out var pid) ? pid : null;
    }

    /// <summary>A file under /proc/PID of a process of the checkpoint is that process's after the restart, under its new pid.</summary>
    private string OfRestarted(string path)
    {
        if (ProcessOf(path) is not { } pid || !Pids.TryGetValue(pid, out var now)) return path;
        var end = path.IndexOf('/', 6);
        return $"/proc/{now}{(end < 0 ? "" : path[end..])}";
    }

    private static string Key(ProcessImage process, FileDescriptorRecord d) => d.Description ?? $"{process.Pid}:{d.Fd}";

    private int OwnerPid(FileOwnerRecord owner)
    {
        const int F_OWNER_TID = 0, F_OWNER_PGRP = 2;
        if (Pids.TryGetValue(owner.Pid, out var now)) return now;
        // A thread keeps its id only when the processes keep theirs.
        if (owner.Type == F_OWNER_TID && Pids.All(p => p.Key == p.Value) && _threadIds.Contains(owner.Pid)) return owner.Pid;
        throw new RestartException(RestartFailure.Unsupported,
            $"a descriptor sends its signals (F_SETOWN) to {(owner.Type == F_OWNER_PGRP ? "process group" : owner.Type == F_OWNER_TID ? "thread" : "process")} {owner.Pid}, " +
            "which is not part of the checkpoint; the restart cannot point it at the same target.");
    }

    private int Create(ProcessImage process, FileDescriptorRecord d)
    {
        if (d.Kind == FileDescriptorKind.Pipe && _pipeEnds.Contains((d.Inode, true)) && _pipeEnds.Contains((d.Inode, false)))
            return Pipe(d.Inode, d.Readable && !d.Writable, Key(process, d));
        if (d.Kind == FileDescriptorKind.Socket)
            return Socket(d);
        if (d.Kind == FileDescriptorKind.ListeningSocket)
        {
            if (!_sockets.TryGetValue(d.Inode, out var listener))
                _sockets[d.Inode] = listener = ListeningSocketRestore.Listen(d, _relocate, _log);
            return (int)listener.DangerousGetHandle();
        }
        var key = Key(process, d);
        if (!_descriptions.TryGetValue(key, out var handle))
            _descriptions[key] = handle = Open(process, d);
        return (int)handle.DangerousGetHandle();
    }

    private SafeFileHandle Open(ProcessImage process, FileDescriptorRecord d)
    {
        switch (d.Kind)
        {
            case FileDescriptorKind.Symlink when d.SymlinkTarget is not null:
                return OpenPath(d.Deleted ? MakeDeleted(d.Path, d) : _relocate.Map(d.Path), d.Flags | O_PATH | O_NOFOLLOW, d.Fd);
            case FileDescriptorKind.Device when d.Deleted:
                return OpenPath(MakeDeleted(d.Path, d), d.Flags, d.Fd);
            case FileDescriptorKind.Directory when d.Deleted:
                return OpenPath(DeletedDirectory(d.Path), d.Flags | O_DIRECTORY, d.Fd);
            case FileDescriptorKind.RegularFile or FileDescriptorKind.Directory or FileDescriptorKind.Device:
                return Seek(OpenPath(OfRestarted(_relocate.Map(d.Path)), d.Flags | (d.Kind == FileDescriptorKind.Directory ? O_DIRECTORY : 0), d.Fd), d);
            case FileDescriptorKind.Fifo:
                return OpenFifo(d, d.Deleted ? MakeDeleted(d.Path, d) : _relocate.Map(d.Path));
            case FileDescriptorKind.UnlinkedFile when d.SavedFileKey is not null && _shared.Contains(d.SavedFileKey):
                return Seek(OpenPath($"/proc/self/fd/{_shared.EngineFd(d.SavedFileKey)}", d.Flags, d.Fd), d);
            case FileDescriptorKind.UnlinkedFile:
            {
                var path = new ContextFiles(_image).Recreate(d.SavedFileKey!, d.Path);
                try { return Seek(OpenPath(path, d.Flags, d.Fd), d); }
                finally { File.Delete(path); }
            }
            case FileDescriptorKind.Memfd when d.SavedFileKey is not null && _shared.Contains(d.SavedFileKey):
            {
                // memfd_create's own file is no writer (the memfd can be exec'ed while it is open),
                // a reopen through /proc is one: the first read-write description gets the
                // engine's memfd_create file itself, every other is a description of its own
                // opened through the object with its access mode and flags.
                var engineFd = _shared.EngineFd(d.SavedFileKey);
                if ((d.Flags & O_ACCMODE) == O_RDWR && _shared.TakeOriginal(d.SavedFileKey))
                {
                    // Its status flags come back with its description (DescriptionState.Apply).
                    return Seek(Duplicate(engineFd), d);
                }
                return Seek(OpenPath($"/proc/self/fd/{engineFd}", d.Flags, d.Fd), d);
            }
            case FileDescriptorKind.InetSocket when d.Inet is not null:
                return InetSocketState.Create(d.Inet, d.Flags, d.Fd, _log, d.SocketOptions, Connections);
            case FileDescriptorKind.UnixSocket:
                return StandaloneUnixSocket.Create(d, _relocate, _log);
            case FileDescriptorKind.PidFd when d.PidFd is not null:
                return PidFdState.Create(d.PidFd, d.Flags, RestartedPid);
            case FileDescriptorKind.EventFd when d.EventFd is not null:
                return EventFdState.Create(d.EventFd, d.Flags);
            case FileDescriptorKind.TimerFd when d.Timer is not null:
                return TimerFdState.Create(d.Timer, d.Flags);
            case FileDescriptorKind.SignalFd when d.SignalFd is not null:
                return SignalFdState.Create(d.SignalFd, d.Flags);
            case FileDescriptorKind.Inotify when d.Inotify is not null:
                return InotifyState.Create(d.Inotify, d.Flags, d.Fd, _relocate, _log);
            case FileDescriptorKind.Epoll:
                return EpollState.Create();
            case FileDescriptorKind.Terminal when File.Exists(d.Path):
                return OpenPath(d.Path, d.Flags | O_NOCTTY, d.Fd);
            default:
                return Substitute(process, d);
        }
    }

    /// <summary>
    /// A directory, FIFO, device node or symbolic link that was removed while still open, or some
    /// process's working directory:
    /// made anew (at its old path when that is free) and removed again by <see cref="RemoveDeleted"/>
    /// before the processes run, so that they hold a removed one again.
    /// </summary>
    public string DeletedDirectory(string path) => MakeDeleted(path, null);

    private string MakeDeleted(string path, FileDescriptorRecord? node)
    {
        if (_deleted.TryGetValue(path, out var made)) return made;
        var parent = Path.GetDirectoryName(path);
        made = !Path.Exists(path) && Directory.Exists(parent) ? path
            : Path.Combine(Directory.Exists(parent) ? parent : Path.GetTempPath(), $".crrestart.{Environment.ProcessId}.{Random.Shared.Next():x8}");
        if (node is null)
            Directory.CreateDirectory(made, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        else if (node.Kind == FileDescriptorKind.Symlink)
            ErrnoCheck.Check(symlink(node.SymlinkTarget!, made), $"symlink {made}");
        else
        {
            if (node.Kind == FileDescriptorKind.Device)
            {
                if (node.Identity is not { SpecialDevice: { } rdev } device)
                    throw new RestartException(RestartFailure.ContextInvalid, $"the removed device file {path} of descriptor {node.Fd} has no device number in the context.", path);
                ErrnoCheck.Check(mknod(made, (int)(device.Mode & 0xf000) | 0x180, rdev), $"mknod {made}");
            }
            else ErrnoCheck.Check(mkfifo(made, 0x180), $"mkfifo {made}");
            if (node.Identity is { } id)
            {
                if (id.Owner is { } owner && id.Group is { } group) ErrnoCheck.Check(fchownat(AT_FDCWD, made, owner, group, 0), $"chown {made}");
                ErrnoCheck.Check(fchmodat(AT_FDCWD, made, (int)(id.Mode & 0xfff), 0), $"chmod {made}");
            }
        }
        _deleted[path] = made;
        return made;
    }

    public void RemoveDeleted()
    {
        foreach (var made in _deleted.Values)
            // A symbolic link to a directory is removed as the link it is.
            if (new FileInfo(made).LinkTarget is null && Directory.Exists(made)) Directory.Delete(made);
            else File.Delete(made);
        _deleted.Clear();
    }

    private static SafeFileHandle OpenPath(string path, int flags, int forFd)
    {
        // O_TMPFILE (which holds O_DIRECTORY) made the file; reopening it is a plain open.
        if ((flags & O_TMPFILE) == O_TMPFILE) flags &= ~O_TMPFILE;
        var fd = open(path, (flags & ~OpenFlagsToDrop) | O_CLOEXEC, 0);
        if (fd == -1)
            throw new RestartException(RestartFailure.FileMissing,
                $"cannot reopen {path} for descriptor {forFd}: {Marshal.GetPInvokeErrorMessage(ErrnoCheck.LastErrno)}. Put it back or use -Relocate.", path);
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    private static SafeFileHandle Seek(SafeFileHandle handle, FileDescriptorRecord d)
    {
        if (d.Position != 0) lseek((int)handle.DangerousGetHandle(), d.Position, SEEK_SET);
        return handle;
    }

    private static SafeFileHandle Duplicate(int fd) =>
        new((nint)ErrnoCheck.Check(fcntl(fd, 1030 /* F_DUPFD_CLOEXEC */, 3), "dup"), ownsHandle: true);

    /// <summary>
    /// A FIFO opened for writing fails while nobody reads it: a read-write keepalive opens the way.
    /// The keepalive also puts back the bytes that were in flight, once per FIFO.
    /// </summary>
    private unsafe SafeFileHandle OpenFifo(FileDescriptorRecord d, string path)
    {
        if (!_fifos.ContainsKey(d.Inode))
        {
            var keepAlive = OpenPath(path, O_RDWR | O_NONBLOCK, d.Fd);
            _fifos[d.Inode] = keepAlive;
            var saved = _image.Pipes.FirstOrDefault(p => p.Record.Inode == d.Inode);
            if (saved is not null && saved.DataLength > 0)
            {
                var data = ReadSaved(saved.Source, saved.DataOffset, saved.DataLength);
                SetPipeSize((int)keepAlive.DangerousGetHandle(), saved.Record.Capacity, $"the FIFO {path}");
                fixed (byte* p = data)
                    if (write((int)keepAlive.DangerousGetHandle(), p, (nuint)data.Length) != data.Length)
                        throw new NativeException($"refilling the FIFO {path}", ErrnoCheck.LastErrno);
                _log.Add($"FIFO {path} refilled with {data.Length} bytes in flight");
            }
        }
        // Non-blocking to open (a FIFO's open waits for the other side); its own flags come back with its description.
        return OpenPath(path, d.Flags | O_NONBLOCK, d.Fd);
    }

    /// <summary>
    /// A pipe between processes of the checkpoint, made once and refilled with its bytes in flight.
    /// The first description of each end is pipe2's; another description of the same end (one
    /// opened again through /proc/PID/fd, with flags of its own) is opened anew the same way.
    /// </summary>
    private unsafe int Pipe(ulong inode, bool readEnd, string key)
    {
        if (!_pipes.ContainsKey((inode, true)))
        {
            var fds = stackalloc int[2];
            ErrnoCheck.Check(pipe2(fds, O_CLOEXEC | O_NONBLOCK), "pipe2");
            _pipes[(inode, true)] = new SafeFileHandle(fds[0], true);
            _pipes[(inode, false)] = new SafeFileHandle(fds[1], true);
            var saved = _image.Pipes.FirstOrDefault(p => p.Record.Inode == inode);
            if (saved is not null)
            {
                SetPipeSize(fds[1], saved.Record.Capacity, $"pipe:[{inode}]");
                var data = ReadSaved(saved.Source, saved.DataOffset, saved.DataLength);
                fixed (byte* p = data)
                {
                    for (var done = 0; done < data.Length;)
                    {
                        var n = write(fds[1], p + done, (nuint)(data.Length - done));
                        if (n <= 0) throw new NativeException($"refilling pipe:[{inode}]", ErrnoCheck.LastErrno);
                        done += (int)n;
                    }
                }
                if (data.Length > 0) _log.Add($"pipe:[{inode}] refilled with {data.Length} bytes in flight");
            }
            // Blocking or not is a property of each description, given back with it.
            fcntl(fds[0], F_SETFL, 0);
            fcntl(fds[1], F_SETFL, 0);
        }
        var end = _pipes[(inode, readEnd)];
        if (_pipeClaimed.Add((inode, readEnd))) return (int)end.DangerousGetHandle();
        var again = OpenPath($"/proc/self/fd/{(int)end.DangerousGetHandle()}", (readEnd ? O_RDONLY : O_WRONLY) | O_NONBLOCK, -1);
        _descriptions[key] = again;
        return (int)again.DangerousGetHandle();
    }

    /// <summary>F_SETPIPE_SZ can give less than asked (pipe-max-size, a user's pipe quota): the saved bytes would then not fit.</summary>
    private static void SetPipeSize(int fd, int capacity, string what)
    {
        var got = fcntl(fd, F_SETPIPE_SZ, capacity);
        if (got < 0)
            throw new RestartException(RestartFailure.Failed,
                $"cannot give {what} its capacity of {capacity} bytes again: {Marshal.GetPInvokeErrorMessage(ErrnoCheck.LastErrno)} (see /proc/sys/fs/pipe-max-size).");
        if (got != capacity)
            throw new RestartException(RestartFailure.Mismatch, $"{what} got a capacity of {got} bytes instead of {capacity}.");
    }

    /// <summary>
    /// Both ends of a socket pair are made together; each end's saved receive queue is sent again
    /// from the other end, so it waits for its reader as it did.
    /// </summary>
    private unsafe int Socket(FileDescriptorRecord d)
    {
        if (!_sockets.ContainsKey(d.Inode))
        {
            var fds = stackalloc int[2];
            ErrnoCheck.Check(socketpair(AF_UNIX, d.SocketType | SOCK_CLOEXEC, 0, fds), "socketpair");
            var mine = new SafeFileHandle(fds[0], true);
            var peer = new SafeFileHandle(fds[1], true);
            _sockets[d.Inode] = mine;
            if (d.PeerInode != 0) _sockets[d.PeerInode] = peer;
            Refill(d.Inode, peer);
            Refill(d.PeerInode, mine);
            SocketOptionState.ApplyPair(_image, d, fds[0], fds[1]);
            if (d.PeerInode == 0) peer.Dispose(); // the end the program had closed, closed again
        }
        return (int)_sockets[d.Inode].DangerousGetHandle();
    }

    /// <summary>A pipe end in flight in a unix socket: a description of its own, with its own flags.</summary>
    private int InFlightPipe(ulong inode, bool readEnd, int flags, string key)
    {
        var fd = Pipe(inode, readEnd, key);
        ErrnoCheck.Check(fcntl(fd, F_SETFL, flags & SettableStatusFlags & ~O_ASYNC), $"F_SETFL of pipe:[{inode}] in flight");
        return fd;
    }

    private unsafe void Refill(ulong inode, SafeFileHandle sender)
    {
        var saved = _image.Sockets.FirstOrDefault(s => s.Record.Inode == inode);
        if (saved is null || (saved.DataLength == 0 && saved.Record.MessageLengths.Length == 0)) return; // empty datagrams count
        var data = ReadSaved(saved.Source, saved.DataOffset, saved.DataLength);
        var lengths = saved.Record.MessageLengths.Length > 0 ? saved.Record.MessageLengths : [data.Length];
        var at = 0;
        fixed (byte* p = data)
        {
            for (var i = 0; i < lengths.Length; i++)
            {
                var rights = (saved.Record.InFlight ?? []).Where(m => m.Message == i).SelectMany(m => m.Pipes)
                    .Select(e => InFlightPipe(e.Inode, e.ReadEnd, e.Flags, $"socket:[{inode}] message {i}")).ToList();
                if (!SocketCapture.Resend((int)sender.DangerousGetHandle(), p + at, lengths[i], rights))
                    throw new NativeException($"refilling socket:[{inode}]", ErrnoCheck.LastErrno);
                at += lengths[i];
            }
        }
        _log.Add($"socket:[{inode}] refilled with {data.Length} bytes in {lengths.Length} message(s)");
    }

    /// <summary>Bytes a PipeData or SocketData record holds, from the context file they are in.</summary>
    private static byte[] ReadSaved(string source, long offset, long length)
    {
        var data = new byte[length];
        using var context = File.OpenHandle(source, FileMode.Open, FileAccess.Read);
        if (RandomAccess.Read(context, data, offset) != length)
            throw new RestartException(RestartFailure.ContextInvalid, $"{source} ends inside saved pipe or socket data.", source);
        return data;
    }

    /// <summary>A pipe whose other end is gone, or a terminal that no longer exists.</summary>
    private SafeFileHandle Substitute(ProcessImage process, FileDescriptorRecord d)
    {
        _replaced.Add(Key(process, d));
        var (path, callerFd) = d.Fd switch
        {
            0 => (_streams.Input, 0),
            1 => (_streams.Output, 1),
            2 => (_streams.Error, 2),
            _ => ("/dev/null", -1),
        };
        if (path is not null)
        {
            _log.Add($"descriptor {d.Fd} of process {process.Pid} ({d.Path}) now goes to {path}");
            var fd = open(path, (d.Fd == 0 ? O_RDONLY : O_WRONLY | O_APPEND | O_CREAT) | O_CLOEXEC, 0x1a4);
            if (fd == -1)
                throw new RestartException(RestartFailure.FileMissing,
                    $"cannot open {path} for descriptor {d.Fd}: {Marshal.GetPInvokeErrorMessage(ErrnoCheck.LastErrno)}.", path);
            return new SafeFileHandle(fd, true);
        }
        _log.Add($"descriptor {d.Fd} of process {process.Pid} ({d.Path}) now goes to the caller's descriptor {callerFd}");
        return Duplicate(callerFd);
    }

    public void Dispose()
    {
        try { RemoveDeleted(); } catch (IOException) { }
        foreach (var h in _descriptions.Values.Concat(_pipes.Values).Concat(_fifos.Values).Concat(_sockets.Values)) h.Dispose();
        _sockets.Clear();
        _descriptions.Clear();
        _pipes.Clear();
        _fifos.Clear();
    }
}
