using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Proc;
using CrCheckpoint.Engine.Restart;
using CrCheckpoint.Engine.Tracing;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Process;

/// <summary>
/// What a process is besides its memory, files, signals and threads: its command line, executable,
/// working directory and root, name, umask, personality and membarrier(2) registrations.
/// </summary>
public static class ProcessAttributes
{
    private const int PR_SET_NAME = 15, MEMBARRIER_CMD_GET_REGISTRATIONS = 1 << 9;

    public readonly record struct Captured(string Executable, string[] CommandLine, string WorkingDirectory, string Root,
        uint Personality, int MembarrierRegistrations);

    /// <summary>Needs the process prepared for remote calls: only the process can tell its membarrier registrations.</summary>
    public static Captured Capture(Tracee tracee)
    {
        var pid = tracee.Pid;
        var executable = ProcFds.ReadLink($"/proc/{pid}/exe") ?? "";
        if (executable.EndsWith(" (deleted)", StringComparison.Ordinal)) executable = executable[..^10];
        var membarrier = tracee.Syscall(Syscalls.membarrier, MEMBARRIER_CMD_GET_REGISTRATIONS, 0);
        return new Captured(
            executable,
            File.ReadAllText($"/proc/{pid}/cmdline").TrimEnd('\0').Split('\0'),
            ProcFds.ReadLink($"/proc/{pid}/cwd") ?? "/",
            ProcFds.ReadLink($"/proc/{pid}/root") ?? "/",
            ReadPersonality(pid),
            membarrier > 0 ? (int)membarrier : 0);
    }

    private static uint ReadPersonality(int pid) => Convert.ToUInt32(File.ReadAllText($"/proc/{pid}/personality").Trim(), 16);

    public static void RestoreEnvironment(Tracee tracee, ProcessRecord process, PathRelocator relocate, Func<string, string> deletedDirectory)
    {
        var name = System.Text.Encoding.UTF8.GetBytes(process.Name);
        var buffer = new byte[16];
        name.AsSpan(0, Math.Min(15, name.Length)).CopyTo(buffer);
        using var scratch = tracee.Scratch();
        tracee.CheckedSyscall("prctl(PR_SET_NAME)", Syscalls.prctl, PR_SET_NAME, scratch.Bytes(buffer));

        // The working directory first, by its path from the engine's root, then the root: a chrooted
        // process's working directory is inside its root, where that path would no longer lead.
        const string Deleted = " (deleted)";
        var cwd = process.WorkingDirectory.EndsWith(Deleted, StringComparison.Ordinal)
            ? deletedDirectory(process.WorkingDirectory[..^Deleted.Length])
            : relocate.Map(process.WorkingDirectory);
        var r = tracee.Syscall(Syscalls.chdir, scratch.String(cwd));
        if (RemoteResult.Failed(r, out _))
            throw new RestartException(RestartFailure.FileMissing,
                $"the working directory {cwd} of process {process.Pid} ({process.Name}) does not exist. Create it or use -Relocate.", cwd);
        if (process.Root != "/")
        {
            var root = relocate.Map(process.Root);
            var rr = tracee.Syscall(Syscalls.chroot, scratch.String(root));
            if (RemoteResult.Failed(rr, out var errno))
                throw new RestartException(RestartFailure.FileMissing,
                    $"cannot give process {process.Pid} ({process.Name}) its root directory {root} again: {Marshal.GetPInvokeErrorMessage((int)errno)}.", root);
        }
        tracee.Syscall(Syscalls.umask, process.Umask);
        if (process.Personality != 0) tracee.Syscall(Syscalls.personality, process.Personality);
    }

    /// <summary>
    /// membarrier(2) registrations belong to the address space: runtimes (.NET's write barrier
    /// flush, for one) register once at start and fail hard if the expedited command is refused later.
    /// </summary>
    public static void RestoreMembarrier(Tracee tracee, ProcessRecord process)
    {
        for (var bit = 0; bit < 31; bit++)
        {
            var command = 1 << bit;
            if ((process.MembarrierRegistrations & command) == 0) continue;
            tracee.CheckedSyscall($"membarrier(register {command})", Syscalls.membarrier, command, 0);
        }
    }

    /// <summary>The restart's self-check of what this file restores: name, umask and personality.</summary>
    public static void Verify(int pid, ProcessRecord process)
    {
        var status = Proc.ProcStatus.Read(pid);
        RestartCheck.Expect(pid, "the umask", Convert.ToString(process.Umask, 8), Convert.ToString(status.Umask, 8));
        var personality = ReadPersonality(pid);
        if (process.Personality != 0)
            RestartCheck.Expect(pid, "the personality", $"0x{process.Personality:x}", $"0x{personality:x}");
        RestartCheck.Expect(pid, "the name", process.Name, Proc.ProcStat.Read(pid).Comm);
    }
}
