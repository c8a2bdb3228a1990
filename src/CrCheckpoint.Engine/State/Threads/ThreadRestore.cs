using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Tracing;

namespace CrCheckpoint.Engine.State.Threads;

public static class ThreadRestore
{
    private const int RSEQ_FLAG_UNREGISTER = 1;
    private const long EINTR = 4;

    /// <summary>A registered rseq area must go before the memory under it does, or the kernel kills the process.</summary>
    public static void DropRseq(Tracee tracee)
    {
        if (tracee.GetRseqConfiguration() is { } rseq)
            tracee.CheckedSyscall("rseq (unregister)", Syscalls.rseq, (long)rseq.RseqAbiPointer, rseq.RseqAbiSize, RSEQ_FLAG_UNREGISTER, rseq.Signature);
    }

    /// <summary>
    /// Per-thread kernel state of every thread: clear_child_tid (the leader's; the others got theirs
    /// at birth), robust futex list, alternate stack, rseq and name (where it differs from the
    /// leader's, which new threads inherit). Each is a call the thread must make itself; they run in
    /// all threads at once, one round per kind, each thread with its own slot of the shared scratch page.
    /// </summary>
    public static void RestoreKernelState(IReadOnlyList<(Tracee Thread, ThreadRecord Record)> threads)
    {
        const int Slot = 32, PR_SET_NAME = 15;
        for (var first = 0; first < threads.Count; first += Tracee.ScratchSize / Slot)
        {
            var batch = threads.Skip(first).Take(Tracee.ScratchSize / Slot).ToList();
            var scratch = (long)batch[0].Thread.Scratch;
            var slots = new byte[batch.Count * Slot];

            Run(batch.Where(t => t.Record.ClearChildTid != 0 && t.Thread.Tid == t.Thread.Pid)
                .Select(t => (t.Thread, Syscalls.set_tid_address, (long)t.Record.ClearChildTid, 0L, 0L, 0L)));
            Run(batch.Where(t => t.Record.RobustListHead != 0)
                .Select(t => (t.Thread, Syscalls.set_robust_list, (long)t.Record.RobustListHead, (long)t.Record.RobustListLength, 0L, 0L)));

            for (var i = 0; i < batch.Count; i++)
            {
                if (batch[i].Record.AltStack is not { } ss) continue;
                BitConverter.TryWriteBytes(slots.AsSpan(i * Slot, 8), ss.Base);
                BitConverter.TryWriteBytes(slots.AsSpan(i * Slot + 8, 4), ss.Flags & ~1); // SS_ONSTACK is state, not a setting
                BitConverter.TryWriteBytes(slots.AsSpan(i * Slot + 16, 8), ss.Size);
            }
            batch[0].Thread.WriteScratch(slots);
            Check("sigaltstack", Run(batch.Select((t, i) => (t, i)).Where(x => x.t.Record.AltStack is not null)
                .Select(x => (x.t.Thread, Syscalls.sigaltstack, scratch + x.i * Slot, 0L, 0L, 0L))));

            Check("rseq (register)", Run(batch.Where(t => t.Record.Rseq is not null)
                .Select(t => (t.Thread, Syscalls.rseq, (long)t.Record.Rseq!.Address, (long)t.Record.Rseq.Length, 0L, (long)t.Record.Rseq.Signature))));

            var leaderName = threads[0].Record.Name;
            var renamed = batch.Select((t, i) => (t, i)).Where(x => x.t.Record.Name != leaderName).ToList();
            if (renamed.Count == 0) continue;
            Array.Clear(slots);
            foreach (var (t, i) in renamed)
            {
                var name = System.Text.Encoding.UTF8.GetBytes(t.Record.Name);
                name.AsSpan(0, Math.Min(15, name.Length)).CopyTo(slots.AsSpan(i * Slot));
            }
            batch[0].Thread.WriteScratch(slots);
            Run(renamed.Select(x => (x.t.Thread, Syscalls.prctl, (long)PR_SET_NAME, scratch + x.i * Slot, 0L, 0L)));
        }
    }

    private static long[] Run(IEnumerable<(Tracee, long, long, long, long, long)> calls) => Tracee.SyscallInEach(calls.ToList());

    private static void Check(string call, long[] results)
    {
        foreach (var r in results)
            if (r < 0 && r > -4096) throw new NativeException($"{call} in a restarted thread", (int)-r);
    }

    /// <summary>
    /// glibc keeps each thread's id in its thread descriptor, the word clear_child_tid points at;
    /// with a new id that word must say so, or raise() and pthread_kill() signal the old id.
    /// </summary>
    public static void FixCachedThreadId(Tracee tracee, ThreadRecord thread)
    {
        if (thread.ClearChildTid == 0) return;
        ProcessMemory.Write(tracee.Pid, thread.ClearChildTid, BitConverter.GetBytes(tracee.Tid));
    }

    /// <summary>
    /// The registers the thread leaves with. A thread frozen inside a system call is pointed back
    /// at the syscall instruction with the call number in rax: a new process has no kernel restart
    /// state, so the call is simply issued again (sleep, read, poll, waitpid carry on). The one call
    /// that cannot be issued again is restart_syscall (a sleep already resumed once continues
    /// through it, and only the old kernel knew the rest): it returns EINTR, as a signal would make
    /// it, and the program's own EINTR handling takes over.
    /// </summary>
    public static Registers FinalRegisters(Tracee tracee, ThreadRecord thread)
    {
        var regs = Registers.FromArray(thread.Registers);
        if (thread.InterruptedSyscall is { } sc)
        {
            if (sc.Number == Syscalls.restart_syscall)
                regs.Rax = unchecked((ulong)-EINTR);
            else
            {
                regs.Rip -= 2;
                regs.Rax = (ulong)sc.Number;
                if (sc.ReturnCode == -516) SleepOnlyWhatWasLeft(tracee, ref regs);
            }
        }
        regs.OrigRax = ulong.MaxValue;
        return regs;
    }

    private const int TIMER_ABSTIME = 1;

    /// <summary>
    /// An interrupted relative sleep with a "remaining" buffer had the kernel write the time left
    /// into it. Issued again as it was, the sleep would start over; pointing the request at a copy
    /// of that remainder (below the red zone of the thread's stack, which the interrupted call
    /// does not use) makes the program wake when it would have.
    /// </summary>
    private static void SleepOnlyWhatWasLeft(Tracee tracee, ref Registers regs)
    {
        ulong request, remaining;
        switch ((long)regs.Rax)
        {
            case Syscalls.nanosleep:
                (request, remaining) = (regs.Rdi, regs.Rsi);
                break;
            case Syscalls.clock_nanosleep when ((long)regs.Rsi & TIMER_ABSTIME) == 0:
                (request, remaining) = (regs.Rdx, regs.R10);
                break;
            default:
                return;
        }
        if (remaining == 0 || remaining == request) return;
        Span<byte> left = stackalloc byte[16];
        ProcessMemory.Read(tracee.Pid, remaining, left);
        var copy = (regs.Rsp - 128 - 16) & ~15UL;
        ProcessMemory.Write(tracee.Pid, copy, left);
        if ((long)regs.Rax == Syscalls.nanosleep) regs.Rdi = copy; else regs.Rdx = copy;
    }
}
