using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Restart;
using CrCheckpoint.Engine.State.Memory;
using CrCheckpoint.Engine.Tracing;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Process;

/// <summary>The per-process pieces of a rebuild that are neither memory, files, signals nor threads.</summary>
public static class ProcessRestore
{
    private const int PR_SET_NAME = 15, PR_SET_MM = 35, PR_SET_MM_MAP = 14;

    /// <summary>
    /// prctl(PR_SET_MM_MAP): code, data, brk, stack, argument and environment bounds, auxv and the
    /// executable, in one call. It must come after the stub's own executable is unmapped.
    /// </summary>
    public static void RestoreMemoryLayout(Tracee tracee, ProcessRecord process, PathRelocator relocate, MessageLog log)
    {
        var layout = process.MemoryLayout;
        var exe = relocate.Map(process.Executable);
        using var scratch = tracee.Scratch();
        long exeFd = -1;
        if (File.Exists(exe))
        {
            exeFd = tracee.Syscall(Syscalls.openat, AT_FDCWD, scratch.String(exe), O_RDONLY | O_CLOEXEC, 0);
            if (RemoteResult.Failed(exeFd, out _)) exeFd = -1;
        }
        else log.Add($"executable {exe} no longer exists; /proc/{tracee.Pid}/exe will not name it");

        var auxv = layout.Auxv;
        var auxvCopy = scratch.Bytes(auxv);
        var map = new ulong[13];
        map[0] = layout.StartCode; map[1] = layout.EndCode; map[2] = layout.StartData; map[3] = layout.EndData;
        map[4] = layout.StartBrk; map[5] = layout.Brk; map[6] = layout.StartStack; map[7] = layout.ArgStart;
        map[8] = layout.ArgEnd; map[9] = layout.EnvStart; map[10] = layout.EnvEnd;
        map[11] = auxvCopy.Address;
        map[12] = (uint)auxv.Length | ((ulong)(uint)exeFd << 32);
        var r = tracee.Syscall(Syscalls.prctl, PR_SET_MM, PR_SET_MM_MAP, scratch.Bytes(MemoryMarshal.AsBytes(map.AsSpan())), 104, 0);
        if (exeFd >= 0) tracee.Syscall(Syscalls.close, exeFd);
        if (RemoteResult.Failed(r, out var errno))
            throw new RestartException(RestartFailure.PermissionDenied,
                $"prctl(PR_SET_MM_MAP) failed in the restarted process: {Marshal.GetPInvokeErrorMessage((int)errno)}. Restarting needs CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN).");
    }

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
        var personality = Convert.ToUInt32(File.ReadAllText($"/proc/{pid}/personality").Trim(), 16);
        if (process.Personality != 0)
            RestartCheck.Expect(pid, "the personality", $"0x{process.Personality:x}", $"0x{personality:x}");
        RestartCheck.Expect(pid, "the name", process.Name, Proc.ProcStat.Read(pid).Comm);
    }
}
