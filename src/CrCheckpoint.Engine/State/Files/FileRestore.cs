using CrCheckpoint.Engine.Image;
using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Restart;
using CrCheckpoint.Engine.Tracing;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>
/// Gives a rebuilt process its descriptors back, at their numbers and with their close-on-exec
/// flags: each one is pulled in from the engine's <see cref="OpenFileTable"/> with pidfd_getfd.
/// </summary>
public static class FileRestore
{
    private const int F_SETFD = 2, FD_CLOEXEC = 1;

    /// <summary>Refuses a restart whose regular files are missing, or whose socket names are taken, before anything is built.</summary>
    /// <param name="restarted">The processes of the context: a file under /proc/PID of one of them will be there once it is made.</param>
    public static void CheckFiles(ProcessImage process, PathRelocator relocate, IReadOnlySet<int> restarted)
    {
        var sockets = new Lazy<Dictionary<ulong, UnixSocketInfo>>(UnixSocketDiag.Dump);
        foreach (var d in process.Files.Descriptors)
        {
            if (d.Kind == FileDescriptorKind.ListeningSocket) ListeningSocketRestore.Check(d, relocate, process.Pid, sockets);
            if (d.Kind is not (FileDescriptorKind.RegularFile or FileDescriptorKind.Directory or FileDescriptorKind.Fifo)) continue;
            if (d.Kind is FileDescriptorKind.Directory or FileDescriptorKind.Fifo && d.Deleted) continue;
            var path = relocate.Map(d.Path);
            if (OpenFileTable.ProcessOf(path) is { } pid && restarted.Contains(pid)) continue;
            if (!File.Exists(path) && !Directory.Exists(path))
                throw new RestartException(RestartFailure.FileMissing,
                    $"{path}, open as descriptor {d.Fd} in process {process.Pid} ({process.Name}), does not exist. Put it back or use -Relocate.", path);
        }
    }

    public static void Restore(Tracee tracee, ProcessImage process, OpenFileTable table)
    {
        tracee.CheckedSyscall("close_range", Syscalls.close_range, 0, uint.MaxValue, 0);
        using (var bridge = new DescriptorBridge(tracee, HighestDescriptor(process)))
        {
            foreach (var d in process.Files.Descriptors)
            {
                var fd = bridge.Fetch(table.EngineFd(process, d));
                if (fd == d.Fd)
                {
                    tracee.CheckedSyscall("fcntl(F_SETFD)", Syscalls.fcntl, fd, F_SETFD, d.CloseOnExec ? FD_CLOEXEC : 0);
                    continue;
                }
                tracee.CheckedSyscall("dup3", Syscalls.dup3, fd, d.Fd, d.CloseOnExec ? O_CLOEXEC : 0);
                tracee.Syscall(Syscalls.close, fd);
            }
        }
        EpollState.AddWatches(tracee, process, table.FilledEpolls);
        // After the last close in the process: closing any descriptor of a file drops the process's POSIX locks on it.
        DescriptionState.RestoreInProcess(tracee, process.Files.Descriptors.Where(d => !table.IsReplaced(process, d)).ToList(),
            d => OpenFileTable.IsFirstHolder(process, d));
    }

    /// <summary>The restart's self-check of the descriptors of <paramref name="pid"/>.</summary>
    public static void Verify(int pid, ProcessImage process, OpenFileTable table) =>
        DescriptionState.Verify(pid, process.Files.Descriptors, d => table.IsReplaced(process, d));

    public static int HighestDescriptor(ProcessImage process) =>
        process.Files.Descriptors.Count == 0 ? 2 : Math.Max(2, process.Files.Descriptors.Max(d => d.Fd));
}
