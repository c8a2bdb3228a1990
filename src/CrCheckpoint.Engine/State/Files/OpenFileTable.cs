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
    private const int F_SETFL = 4;
    private readonly Dictionary<string, SafeFileHandle> _descriptions = new();
    private readonly Dictionary<(ulong Inode, bool ReadEnd), SafeFileHandle> _pipes = new();
    private readonly Dictionary<ulong, SafeFileHandle> _fifos = new();
    private readonly Dictionary<ulong, SafeFileHandle> _sockets = new();
    private readonly ContextImage _image;
    private readonly PathRelocator _relocate;
    private readonly StandardStreams _streams;
    private readonly SharedMemoryObjects _shared;
    private readonly MessageLog _log;
    private readonly HashSet<(ulong, bool)> _pipeEnds;

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
            .ToHashSet();
    }

    /// <summary>The id a process of the context has after the restart (pidfds are opened on it); null when it is not in the context.</summary>
    public Func<int, int?> RestartedPid { get; set; } = pid => pid;

    /// <summary>The epolls whose watches were added already (by the first process that holds each).</summary>
    public HashSet<string> FilledEpolls { get; } = [];

    /// <summary>The engine descriptor that descriptor <paramref name="d"/> of <paramref name="process"/> must become.</summary>
    public int EngineFd(ProcessImage process, FileDescriptorRecord d)
    {
        if (d.Kind == FileDescriptorKind.Pipe && _pipeEnds.Contains((d.Inode, true)) && _pipeEnds.Contains((d.Inode, false)))
            return Pipe(d.Inode, d.Readable && !d.Writable, d.Flags);
        if (d.Kind == FileDescriptorKind.Socket)
            return Socket(d);
        if (d.Kind == FileDescriptorKind.ListeningSocket)
        {
            if (!_sockets.TryGetValue(d.Inode, out var listener))
                _sockets[d.Inode] = listener = ListeningSocketRestore.Listen(d, _relocate, _log);
            fcntl((int)listener.DangerousGetHandle(), F_SETFL, d.Flags & O_NONBLOCK);
            return (int)listener.DangerousGetHandle();
        }

        var key = d.Description ?? $"{process.Pid}:{d.Fd}";
        if (!_descriptions.TryGetValue(key, out var handle))
            _descriptions[key] = handle = Open(process, d);
        return (int)handle.DangerousGetHandle();
    }

    private SafeFileHandle Open(ProcessImage process, FileDescriptorRecord d)
    {
        switch (d.Kind)
        {
            case FileDescriptorKind.RegularFile or FileDescriptorKind.Directory or FileDescriptorKind.Device:
                return Seek(OpenPath(_relocate.Map(d.Path), d.Flags | (d.Kind == FileDescriptorKind.Directory ? O_DIRECTORY : 0), d.Fd), d);
            case FileDescriptorKind.Fifo:
                return OpenFifo(d, _relocate.Map(d.Path));
            case FileDescriptorKind.UnlinkedFile:
            {
                var path = new ContextFiles(_image).Recreate(d.SavedFileKey!, d.Path);
                try { return Seek(OpenPath(path, d.Flags, d.Fd), d); }
                finally { File.Delete(path); }
            }
            case FileDescriptorKind.Memfd when d.SavedFileKey is not null && _shared.Contains(d.SavedFileKey):
                return Seek(Duplicate(_shared.EngineFd(d.SavedFileKey)), d);
            case FileDescriptorKind.InetSocket when d.Inet is not null:
                return InetSocketState.Create(d.Inet, d.Flags, d.Fd, _log);
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

    private static SafeFileHandle OpenPath(string path, int flags, int forFd)
    {
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
                fcntl((int)keepAlive.DangerousGetHandle(), F_SETPIPE_SZ, saved.Record.Capacity);
                fixed (byte* p = data)
                    if (write((int)keepAlive.DangerousGetHandle(), p, (nuint)data.Length) != data.Length)
                        throw new NativeException($"refilling the FIFO {path}", ErrnoCheck.LastErrno);
                _log.Add($"FIFO {path} refilled with {data.Length} bytes in flight");
            }
        }
        var handle = OpenPath(path, d.Flags | O_NONBLOCK, d.Fd);
        fcntl((int)handle.DangerousGetHandle(), F_SETFL, d.Flags & ~OpenFlagsToDrop & ~O_ACCMODE);
        return handle;
    }

    private unsafe int Pipe(ulong inode, bool readEnd, int flags)
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
                fcntl(fds[1], F_SETPIPE_SZ, saved.Record.Capacity);
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
            // Blocking or not is a property of each end (its open file description), as it was saved.
            fcntl(fds[0], F_SETFL, 0);
            fcntl(fds[1], F_SETFL, 0);
        }
        var handle = _pipes[(inode, readEnd)];
        fcntl((int)handle.DangerousGetHandle(), F_SETFL, flags & O_NONBLOCK);
        return (int)handle.DangerousGetHandle();
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
            _sockets[d.PeerInode] = peer;
            Refill(d.Inode, peer);
            Refill(d.PeerInode, mine);
        }
        var handle = _sockets[d.Inode];
        fcntl((int)handle.DangerousGetHandle(), F_SETFL, d.Flags & O_NONBLOCK);
        return (int)handle.DangerousGetHandle();
    }

    private unsafe void Refill(ulong inode, SafeFileHandle sender)
    {
        var saved = _image.Sockets.FirstOrDefault(s => s.Record.Inode == inode);
        if (saved is null || saved.DataLength == 0) return;
        var data = ReadSaved(saved.Source, saved.DataOffset, saved.DataLength);
        var lengths = saved.Record.MessageLengths.Length > 0 ? saved.Record.MessageLengths : [data.Length];
        var at = 0;
        fixed (byte* p = data)
        {
            foreach (var length in lengths)
            {
                if (send((int)sender.DangerousGetHandle(), p + at, (nuint)length, 0) != length)
                    throw new NativeException($"refilling socket:[{inode}]", ErrnoCheck.LastErrno);
                at += length;
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
        foreach (var h in _descriptions.Values.Concat(_pipes.Values).Concat(_fifos.Values).Concat(_sockets.Values)) h.Dispose();
        _sockets.Clear();
        _descriptions.Clear();
        _pipes.Clear();
        _fifos.Clear();
    }
}
