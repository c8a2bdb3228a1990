using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Tracing;

namespace CrCheckpoint.Engine.State.Threads;

public static class ThreadCapture
{
    private const int PR_GET_TID_ADDRESS = 40, SS_DISABLE = 2;

    /// <summary>
    /// Every thread's state. clear_child_tid and the alternate stack are known only to a call the
    /// thread makes itself: all threads make each such call at once (one round of
    /// <see cref="Tracee.SyscallInEach"/> per kind), each into its own slot of the scratch page.
    /// </summary>
    public static unsafe List<ThreadRecord> Capture(IReadOnlyList<Tracee> threads, Func<Tracee, string> nameOf, CredentialsRecord process)
    {
        const int Slot = 32;
        var records = new List<ThreadRecord>();
        for (var first = 0; first < threads.Count; first += Tracee.ScratchSize / Slot)
        {
            var batch = threads.Skip(first).Take(Tracee.ScratchSize / Slot).ToList();
            var scratch = (long)batch[0].Scratch;
            Check("prctl(PR_GET_TID_ADDRESS)", Tracee.SyscallInEach(batch.Select((t, i) =>
                (t, Syscalls.prctl, (long)PR_GET_TID_ADDRESS, scratch + i * Slot, 0L, 0L)).ToList()));
            Check("sigaltstack", Tracee.SyscallInEach(batch.Select((t, i) =>
                (t, Syscalls.sigaltstack, 0L, scratch + i * Slot + 8, 0L, 0L)).ToList()));
            var slots = new byte[batch.Count * Slot];
            batch[0].ReadScratch(slots);
            var securebits = Credentials.CredentialsState.SecurebitsOfEach(batch);
            var deathSignals = Process.ProcessControls.ParentDeathSignalsOfEach(batch);
            for (var i = 0; i < batch.Count; i++)
                records.Add(Record(batch[i], nameOf(batch[i]), slots.AsSpan(i * Slot, Slot), process, securebits[i], deathSignals[i]));
        }
        return records;
    }

    private static unsafe ThreadRecord Record(Tracee tracee, string name, ReadOnlySpan<byte> slot, CredentialsRecord process,
        long securebits, int deathSignal)
    {
        var regs = tracee.OriginalRegisters;
        var ssFlags = BitConverter.ToInt32(slot[16..20]);
        AltStackRecord? altStack = (ssFlags & SS_DISABLE) != 0 ? null : new AltStackRecord
        {
            Base = BitConverter.ToUInt64(slot[8..16]), Flags = ssFlags, Size = BitConverter.ToUInt64(slot[24..32]),
        };
        ulong head = 0, length = 0;
        Interop.syscall(Syscalls.get_robust_list, tracee.Tid, (long)&head, (long)&length);
        var rseq = tracee.GetRseqConfiguration();
        var xstate = tracee.GetExtendedState();
        return new ThreadRecord
        {
            Pid = tracee.Pid,
            Tid = tracee.Tid,
            Name = name,
            Registers = regs.ToArray(),
            ExtendedState = xstate.AsSpan(0, xstate.AsSpan().LastIndexOfAnyExcept((byte)0) + 1).ToArray(),
            ExtendedStateSize = xstate.Length,
            BlockedSignals = tracee.OriginalSignalMask,
            PendingSignals = tracee.PeekPendingSignals(shared: false),
            AltStack = altStack,
            Rseq = rseq is { } r ? new RseqRecord { Address = r.RseqAbiPointer, Length = r.RseqAbiSize, Signature = r.Signature } : null,
            ClearChildTid = BitConverter.ToUInt64(slot[..8]),
            RobustListHead = head,
            RobustListLength = length,
            Sandbox = Security.SeccompState.Capture(tracee, process.NoNewPrivileges, process.SeccompMode),
            Credentials = Credentials.CredentialsState.OfThread(tracee.Pid, tracee.Tid, securebits, process),
            Scheduling = Process.Scheduling.Capture(tracee.Tid),
            ParentDeathSignal = deathSignal,
            InterruptedSyscall = regs.InInterruptedSyscall
                ? new InterruptedSyscallRecord { Number = (long)regs.OrigRax, ReturnCode = (long)regs.Rax }
                : null,
        };
    }

    private static void Check(string call, long[] results)
    {
        foreach (var r in results)
            if (r < 0 && r > -4096) throw new NativeException($"{call} in a frozen thread", (int)-r);
    }
}
