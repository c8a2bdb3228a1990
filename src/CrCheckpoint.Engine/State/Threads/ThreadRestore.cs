using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Tracing;

namespace CrCheckpoint.Engine.State.Threads;

public static class ThreadRestore
{
    private const int RSEQ_FLAG_UNREGISTER = 1;

    /// <summary>A registered rseq area must go before the memory under it does, or the kernel kills the process.</summary>
    public static void DropRseq(Tracee tracee)
    {
        if (tracee.GetRseqConfiguration() is { } rseq)
            tracee.CheckedSyscall("rseq (unregister)", Syscalls.rseq, (long)rseq.RseqAbiPointer, rseq.RseqAbiSize, RSEQ_FLAG_UNREGISTER, rseq.Signature);
    }

    /// <summary>Per-thread kernel state: clear_child_tid, robust futex list, alternate stack, rseq.</summary>
    public static void RestoreKernelState(Tracee tracee, ThreadRecord thread)
    {
        if (thread.ClearChildTid != 0) tracee.Syscall(Syscalls.set_tid_address, (long)thread.ClearChildTid);
        if (thread.RobustListHead != 0)
            tracee.Syscall(Syscalls.set_robust_list, (long)thread.RobustListHead, (long)thread.RobustListLength);
        if (thread.AltStack is { } ss)
        {
            var stack = new byte[24];
            BitConverter.TryWriteBytes(stack.AsSpan(0, 8), ss.Base);
            BitConverter.TryWriteBytes(stack.AsSpan(8, 4), ss.Flags & ~1); // SS_ONSTACK is state, not a setting
            BitConverter.TryWriteBytes(stack.AsSpan(16, 8), ss.Size);
            tracee.WriteScratch(stack);
            tracee.CheckedSyscall("sigaltstack", Syscalls.sigaltstack, (long)tracee.Scratch, 0);
        }
        if (thread.Rseq is { } r)
            tracee.CheckedSyscall("rseq (register)", Syscalls.rseq, (long)r.Address, r.Length, 0, r.Signature);
    }

    private const long EINTR = 4;

    /// <summary>
    /// The registers the thread leaves with. A thread frozen inside a system call is pointed back
    /// at the syscall instruction with the call number in rax: a new process has no kernel restart
    /// state, so the call is simply issued again (sleep, read, poll, waitpid carry on). The one call
    /// that cannot be issued again is restart_syscall (a sleep already resumed once continues
    /// through it, and only the old kernel knew the rest): it returns EINTR, as a signal would make
    /// it, and the program's own EINTR handling takes over.
    /// </summary>
    public static Registers FinalRegisters(ThreadRecord thread)
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
            }
        }
        regs.OrigRax = ulong.MaxValue;
        return regs;
    }
}
