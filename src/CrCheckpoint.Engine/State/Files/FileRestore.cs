using CrCheckpoint.Engine.Image;
using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Restart;
using CrCheckpoint.Engine.Tracing;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>Where a descriptor whose pipe or terminal is gone goes instead (cr_restart: the caller's streams).</summary>
public sealed record StandardStreams(string? Input, string? Output, string? Error);

/// <summary>
/// Gives a rebuilt process its descriptors back, at their numbers, with their flags and offsets.
/// Files are reopened by path (after --relocate); unlinked files are recreated from their saved
/// contents and unlinked again; pipes whose far end is gone and vanished terminals are replaced by
/// the caller's own descriptors 0-2 (fetched with pidfd_getfd) or by the file the user named.
/// </summary>
public static class FileRestore
{
    private const int F_SETFD = 2, FD_CLOEXEC = 1;
    private const int OpenFlagsToDrop = O_CREAT | O_TRUNC | O_EXCL | O_NOCTTY;

    /// <summary>Refuses a restart whose regular files are missing, before anything is built.</summary>
    public static void CheckFiles(ProcessImage process, PathRelocator relocate)
    {
        foreach (var d in process.Files.Descriptors)
        {
            if (d.Kind is not (FileDescriptorKind.RegularFile or FileDescriptorKind.Directory or FileDescriptorKind.Fifo)) continue;
            var path = relocate.Map(d.Path);
            if (!File.Exists(path) && !Directory.Exists(path))
                throw new RestartException(RestartFailure.FileMissing,
                    $"{path}, open as descriptor {d.Fd} in process {process.Pid} ({process.Name}), does not exist. Put it back or use -Relocate.", path);
        }
    }

    public static void Restore(Tracee tracee, ProcessImage process, ContextFiles contextFiles, PathRelocator relocate,
        StandardStreams streams, Memory.SharedMemoryObjects shared, MessageLog log)
    {
        var descriptors = process.Files.Descriptors;
        tracee.CheckedSyscall("close_range", Syscalls.close_range, 0, uint.MaxValue, 0);
        using var bridge = new DescriptorBridge(tracee, HighestDescriptor(process));

        var placed = new HashSet<int>();
        var unlinkAfter = new List<string>();
        try
        {
            foreach (var d in descriptors)
            {
                if (placed.Contains(d.Fd)) continue;
                long fd;
                switch (d.Kind)
                {
                    case FileDescriptorKind.RegularFile or FileDescriptorKind.Directory or FileDescriptorKind.Device or FileDescriptorKind.Fifo:
                        fd = Open(tracee, relocate.Map(d.Path), d.Flags | (d.Kind == FileDescriptorKind.Directory ? O_DIRECTORY : 0));
                        break;
                    case FileDescriptorKind.Memfd when d.SavedFileKey is not null && shared.Contains(d.SavedFileKey):
                        fd = bridge.Fetch(shared.EngineFd(d.SavedFileKey));
                        break;
                    case FileDescriptorKind.UnlinkedFile:
                        var recreated = contextFiles.Recreate(d.SavedFileKey!, d.Path);
                        unlinkAfter.Add(recreated);
                        fd = Open(tracee, recreated, d.Flags);
                        break;
                    case FileDescriptorKind.Terminal when File.Exists(d.Path):
                        fd = Open(tracee, d.Path, d.Flags | O_NOCTTY);
                        break;
                    case FileDescriptorKind.Pipe when descriptors.Any(o => o.Inode == d.Inode && o.Readable) && descriptors.Any(o => o.Inode == d.Inode && o.Writable):
                        PlaceSelfPipe(tracee, d, descriptors, placed);
                        continue;
                    default:
                        fd = Substitute(tracee, d, streams, bridge, log);
                        break;
                }
                Place(tracee, fd, d.Fd, d.CloseOnExec);
                placed.Add(d.Fd);
                if (d.Kind is FileDescriptorKind.RegularFile or FileDescriptorKind.UnlinkedFile or FileDescriptorKind.Directory && d.Position != 0)
                    tracee.Syscall(Syscalls.lseek, d.Fd, d.Position, SEEK_SET);
            }
        }
        finally
        {
            foreach (var path in unlinkAfter) File.Delete(path);
        }
    }

    public static int HighestDescriptor(ProcessImage process) =>
        process.Files.Descriptors.Count == 0 ? 2 : Math.Max(2, process.Files.Descriptors.Max(d => d.Fd));

    private static long Open(Tracee tracee, string path, int flags)
    {
        var fd = tracee.Syscall(Syscalls.openat, AT_FDCWD, tracee.ScratchString(path), flags & ~OpenFlagsToDrop, 0);
        if (fd < 0)
            throw new RestartException(RestartFailure.FileMissing, $"cannot reopen {path} in the restarted process: {Marshal.GetPInvokeErrorMessage((int)-fd)}.", path);
        return fd;
    }

    /// <summary>Moves a descriptor to its saved number with its close-on-exec flag.</summary>
    private static void Place(Tracee tracee, long fd, int target, bool closeOnExec)
    {
        if (fd == target)
        {
            tracee.CheckedSyscall("fcntl(F_SETFD)", Syscalls.fcntl, fd, F_SETFD, closeOnExec ? FD_CLOEXEC : 0);
            return;
        }
        tracee.CheckedSyscall("dup3", Syscalls.dup3, fd, target, closeOnExec ? O_CLOEXEC : 0);
        tracee.Syscall(Syscalls.close, fd);
    }

    /// <summary>A pipe with both ends in the process comes back as a new pipe (data in flight is not kept yet).</summary>
    private static void PlaceSelfPipe(Tracee tracee, FileDescriptorRecord first, List<FileDescriptorRecord> all, HashSet<int> placed)
    {
        var ends = all.Where(o => o.Inode == first.Inode).ToList();
        var pipeFlags = (first.Flags & O_NONBLOCK) | O_CLOEXEC;
        tracee.CheckedSyscall("pipe2", Syscalls.pipe2, (long)tracee.Scratch, pipeFlags);
        Span<byte> pair = stackalloc byte[8];
        tracee.ReadScratch(pair);
        var read = BitConverter.ToInt32(pair[..4]);
        var write = BitConverter.ToInt32(pair[4..]);
        foreach (var end in ends)
        {
            var source = end.Readable ? read : write;
            if (source != end.Fd)
                tracee.CheckedSyscall("dup3", Syscalls.dup3, source, end.Fd, end.CloseOnExec ? O_CLOEXEC : 0);
            else
                tracee.CheckedSyscall("fcntl(F_SETFD)", Syscalls.fcntl, end.Fd, F_SETFD, end.CloseOnExec ? FD_CLOEXEC : 0);
            placed.Add(end.Fd);
        }
        if (!ends.Any(e => e.Fd == read)) tracee.Syscall(Syscalls.close, read);
        if (!ends.Any(e => e.Fd == write)) tracee.Syscall(Syscalls.close, write);
    }

    /// <summary>A pipe whose other end is gone, or a terminal that no longer exists.</summary>
    private static long Substitute(Tracee tracee, FileDescriptorRecord d, StandardStreams streams, DescriptorBridge bridge, MessageLog log)
    {
        var (path, callerFd) = d.Fd switch
        {
            0 => (streams.Input, 0),
            1 => (streams.Output, 1),
            2 => (streams.Error, 2),
            _ => ("/dev/null", -1),
        };
        if (path is not null)
        {
            log.Add($"descriptor {d.Fd} ({d.Path}) now goes to {path}");
            var flags = d.Fd == 0 ? O_RDONLY : O_WRONLY | O_APPEND | O_CREAT;
            var fd = tracee.Syscall(Syscalls.openat, AT_FDCWD, tracee.ScratchString(path), flags, 0x1a4);
            if (fd < 0) throw new RestartException(RestartFailure.FileMissing, $"cannot open {path} for descriptor {d.Fd}: {Marshal.GetPInvokeErrorMessage((int)-fd)}.", path);
            return fd;
        }
        log.Add($"descriptor {d.Fd} ({d.Path}) now goes to the caller's descriptor {callerFd}");
        return bridge.Fetch(callerFd);
    }
}
