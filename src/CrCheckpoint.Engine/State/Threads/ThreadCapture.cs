using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Tracing;

namespace CrCheckpoint.Engine.State.Threads;

public static class ThreadCapture
{
    private const int PR_GET_TID_ADDRESS = 40;

    public static unsafe ThreadRecord Capture(Tracee tracee, string name)
    {
        var regs = tracee.OriginalRegisters;

        var scratch = (long)tracee.Scratch;
        tracee.CheckedSyscall("prctl(PR_GET_TID_ADDRESS)", Syscalls.prctl, PR_GET_TID_ADDRESS, scratch);
        Span<byte> buffer = stackalloc byte[24];
        tracee.ReadScratch(buffer[..8]);
        var clearChildTid = BitConverter.ToUInt64(buffer[..8]);

        tracee.CheckedSyscall("sigaltstack", Syscalls.sigaltstack, 0, scratch);
        tracee.ReadScratch(buffer);
        const int SS_DISABLE = 2;
        var ssFlags = BitConverter.ToInt32(buffer[8..12]);
        AltStackRecord? altStack = (ssFlags & SS_DISABLE) != 0 ? null : new AltStackRecord
        {
            Base = BitConverter.ToUInt64(buffer[..8]), Flags = ssFlags, Size = BitConverter.ToUInt64(buffer[16..24]),
        };

        ulong head = 0, length = 0;
        Interop.syscall(Syscalls.get_robust_list, tracee.Tid, (long)&head, (long)&length);

        var rseq = tracee.GetRseqConfiguration();
        return new ThreadRecord
        {
            Pid = tracee.Pid,
            Tid = tracee.Tid,
            Name = name,
            Registers = regs.ToArray(),
            ExtendedState = tracee.GetExtendedState(),
            BlockedSignals = tracee.OriginalSignalMask,
            PendingSignals = tracee.PeekPendingSignals(shared: false),
            AltStack = altStack,
            Rseq = rseq is { } r ? new RseqRecord { Address = r.RseqAbiPointer, Length = r.RseqAbiSize, Signature = r.Signature } : null,
            ClearChildTid = clearChildTid,
            RobustListHead = head,
            RobustListLength = length,
            InterruptedSyscall = regs.InInterruptedSyscall
                ? new InterruptedSyscallRecord { Number = (long)regs.OrigRax, ReturnCode = (long)regs.Rax }
                : null,
        };
    }
}
