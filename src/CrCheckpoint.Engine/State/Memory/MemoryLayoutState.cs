using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Proc;
using CrCheckpoint.Engine.Restart;
using CrCheckpoint.Engine.Tracing;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Memory;

/// <summary>
/// The bounds the kernel keeps for an address space (code, data, brk, stack, arguments, environment),
/// its auxiliary vector and its executable: what /proc/PID/stat and auxv show and PR_SET_MM_MAP sets.
/// </summary>
public static class MemoryLayoutState
{
    private const int PR_SET_MM = 35, PR_SET_MM_MAP = 14;

    public static MemoryLayoutRecord Capture(Tracee tracee, ProcStat stat)
    {
        var brk = tracee.Syscall(Syscalls.brk, 0);
        return new MemoryLayoutRecord
        {
            StartCode = stat.StartCode, EndCode = stat.EndCode,
            StartData = stat.StartData, EndData = stat.EndData,
            StartBrk = stat.StartBrk, Brk = brk > 0 ? (ulong)brk : stat.StartBrk,
            StartStack = stat.StartStack,
            ArgStart = stat.ArgStart, ArgEnd = stat.ArgEnd,
            EnvStart = stat.EnvStart, EnvEnd = stat.EnvEnd,
            Auxv = File.ReadAllBytes($"/proc/{tracee.Pid}/auxv"),
        };
    }

    /// <summary>
    /// prctl(PR_SET_MM_MAP): code, data, brk, stack, argument and environment bounds, auxv and the
    /// executable, in one call. It must come after the stub's own executable is unmapped.
    /// </summary>
    public static void Restore(Tracee tracee, ProcessRecord process, PathRelocator relocate, MessageLog log)
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
}
