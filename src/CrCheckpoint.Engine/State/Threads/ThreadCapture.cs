using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Tracing;

namespace CrCheckpoint.Engine.State.Threads;

public static class ThreadCapture
{
    private const int PR_GET_TID_ADDRESS = 40, SS_DISABLE = 2;

    /// <summary>
    /// Every thread's state. clear_child_tid and the alternate stack are known only to a call the
    /// thread makes itself: all threads make each such call at once (one round of
    /// <see cref="Tracee.SyscallInEach"/> per kind), each into its own <see cref="Answers"/> in the scratch page.
    /// </summary>
    public static unsafe List<ThreadRecord> Capture(IReadOnlyList<Tracee> threads, Func<Tracee, string> nameOf, CredentialsRecord process)
    {
        var records = new List<ThreadRecord>();
        // Room for the answers of 1536 threads at a time, and for each thread's parent-death signal.
        var room = Size * 1536;
        for (var first = 0; first < threads.Count; first += room / Size)
        {
            var batch = threads.Skip(first).Take(room / Size).ToList();
            using var scratch = batch[0].Scratch();
            var answers = scratch.Buffer(batch.Count * Size);
            long Of(int i, int field) => answers.Slice(i * Size + field, 8);
            Check("prctl(PR_GET_TID_ADDRESS)", Tracee.SyscallInEach(batch.Select((t, i) =>
                (t, Syscalls.prctl, (long)PR_GET_TID_ADDRESS, Of(i, 0), 0L, 0L)).ToList()));
            Check("sigaltstack", Tracee.SyscallInEach(batch.Select((t, i) =>
                (t, Syscalls.sigaltstack, 0L, Of(i, 8), 0L, 0L)).ToList()));
            var slots = new byte[batch.Count * Size];
            answers.Read(slots);
            var securebits = Credentials.CredentialsState.SecurebitsOfEach(batch);
            var deathSignals = Process.ProcessControls.ParentDeathSignalsOfEach(batch);
            for (var i = 0; i < batch.Count; i++)
                records.Add(Record(batch[i], nameOf(batch[i]), slots.AsSpan(i * Size, Size), process, securebits[i], deathSignals[i]));
        }
        return records;
    }

    /// <summary>What each thread is asked: its clear_child_tid (a pointer), then its stack_t (ss_sp, ss_flags, ss_size).</summary>
    private static readonly int Size = System.Runtime.CompilerServices.Unsafe.SizeOf<Answers>();

    [StructLayout(LayoutKind.Sequential)]
    private struct Answers
    {
        public ulong ClearChildTid, StackBase;
        public int StackFlags, Padding;
        public ulong StackSize;
    }

    private static unsafe ThreadRecord Record(Tracee tracee, string name, ReadOnlySpan<byte> slot, CredentialsRecord process,
        long securebits, int deathSignal)
    {
        var regs = tracee.OriginalRegisters;
        var answers = MemoryMarshal.Read<Answers>(slot);
        AltStackRecord? altStack = (answers.StackFlags & SS_DISABLE) != 0 ? null : new AltStackRecord
        {
            Base = answers.StackBase, Flags = answers.StackFlags, Size = answers.StackSize,
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
            ClearChildTid = answers.ClearChildTid,
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
        foreach (var r in results) RemoteResult.Check(r, $"{call} in a frozen thread");
    }
}
