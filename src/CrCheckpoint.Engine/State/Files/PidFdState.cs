using CrCheckpoint.Engine.Proc;
using System.Globalization;
using CrCheckpoint.Engine.Native;
using Microsoft.Win32.SafeHandles;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>
/// Pidfds of processes of the checkpoint: opened again at restart on the restarted process (its new
/// id with -NoRestorePid). A pidfd of a process outside the checkpoint, or of one already reaped, is
/// refused: nothing at restart could be the same process.
/// </summary>
public static class PidFdState
{
    private const int PIDFD_THREAD = 0x80; // O_EXCL
    private const int O_NONBLOCK = 0x800;

    public static bool IsPidFd(string path) => path == "anon_inode:[pidfd]" || path.StartsWith("pidfd:", StringComparison.Ordinal);

    public static PidFdRecord Capture(int pid, int fd, FdInfo info)
    {
        var target = int.TryParse(info["Pid"], NumberStyles.Integer, CultureInfo.InvariantCulture, out var p) ? p : 0;
        if (target <= 0)
            throw new UnsupportedStateException(pid,
                $"descriptor {fd} is a pidfd of a process that has ended and been reaped (fdinfo Pid: {info["Pid"] ?? "none"}); this version cannot make such a pidfd again");
        // fdinfo flags are octal.
        var flags = info["flags"] is { } text ? Convert.ToInt32(text, 8) : 0;
        return new PidFdRecord { Pid = target, Thread = (flags & PIDFD_THREAD) != 0 };
    }

    /// <summary>Every pidfd must refer to a process of the checkpoint (zombies included).</summary>
    public static void CheckTargets(IEnumerable<FileTableRecord> tables, IReadOnlyCollection<int> pids)
    {
        foreach (var table in tables)
            foreach (var d in table.Descriptors.Where(d => d.PidFd is not null))
                if (!pids.Contains(d.PidFd!.Pid))
                    throw new UnsupportedStateException(table.Pid,
                        $"descriptor {d.Fd} is a pidfd of process {d.PidFd.Pid}, which is not part of the checkpoint; checkpoint that process too (-Scope Tree from a common ancestor, or -Scope Session)");
    }

    /// <summary>A pidfd on the restarted process, made by the engine and handed over like any other descriptor.</summary>
    public static SafeFileHandle Create(PidFdRecord record, int openFlags, Func<int, int?> restartedPid)
    {
        var pid = restartedPid(record.Pid)
            ?? throw new InvalidOperationException($"the pidfd's process {record.Pid} is not in the context");
        var fd = (int)ErrnoCheck.Check(Interop.syscall(Syscalls.pidfd_open, pid, (openFlags & O_NONBLOCK) | (record.Thread ? PIDFD_THREAD : 0)),
            $"pidfd_open({pid})");
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>Read back: each restored pidfd refers to the restarted process.</summary>
    public static void Verify(int pid, FileTableRecord table, Func<int, int?> restartedPid)
    {
        foreach (var d in table.Descriptors.Where(d => d.PidFd is not null))
            RestartCheck.Expect(pid, $"descriptor {d.Fd}: the pidfd's process",
                restartedPid(d.PidFd!.Pid)?.ToString(CultureInfo.InvariantCulture), FdInfo.Read(pid, d.Fd)["Pid"]);
    }
}
