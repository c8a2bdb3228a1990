using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Image;
using CrCheckpoint.Engine.Restart;
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
    /// The calls a thread makes itself to get back its per-thread kernel state: clear_child_tid (the
    /// leader's; the others get theirs at birth), robust futex list, alternate stack, rseq, and its
    /// name where it differs from the leader's, which new threads inherit.
    /// </summary>
    public static RemoteBatch KernelStateCalls(ThreadRecord thread, bool leader, string leaderName)
    {
        const int PR_SET_NAME = 15;
        var calls = new RemoteBatch();
        if (leader && thread.ClearChildTid != 0)
            calls.Add("set_tid_address", new RemoteCall(Syscalls.set_tid_address, (long)thread.ClearChildTid));
        if (thread.RobustListHead != 0)
            calls.Add("set_robust_list", new RemoteCall(Syscalls.set_robust_list, (long)thread.RobustListHead, (long)thread.RobustListLength));
        if (thread.AltStack is { } ss)
        {
            // stack_t: ss_sp, ss_flags, ss_size.
            var stack = new byte[24];
            BitConverter.TryWriteBytes(stack.AsSpan(0, 8), ss.Base);
            BitConverter.TryWriteBytes(stack.AsSpan(8, 4), ss.Flags & ~1); // SS_ONSTACK is state, not a setting
            BitConverter.TryWriteBytes(stack.AsSpan(16, 8), ss.Size);
            calls.Add("sigaltstack", new RemoteCall(Syscalls.sigaltstack, RemoteArg.Bytes(stack)));
        }
        if (thread.Rseq is { } rseq)
            calls.Add("rseq (register)", new RemoteCall(Syscalls.rseq, (long)rseq.Address, rseq.Length, 0, rseq.Signature));
        if (!leader && thread.Name != leaderName)
        {
            var name = new byte[16];
            var bytes = System.Text.Encoding.UTF8.GetBytes(thread.Name);
            bytes.AsSpan(0, Math.Min(15, bytes.Length)).CopyTo(name);
            calls.Add("prctl(PR_SET_NAME)", new RemoteCall(Syscalls.prctl, PR_SET_NAME, RemoteArg.Bytes(name)));
        }
        return calls;
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

    /// <summary>
    /// Gives a rebuilt process its threads and every thread its per-thread kernel state, in one
    /// trip of the leader and one of each new thread (<see cref="Tracee.CreateThreads"/>). Every
    /// thread keeps root until the process has everything that needs it (see <see cref="Credentials.CredentialsState"/>).
    /// Returns the threads after the leader, in the order of the records.
    /// </summary>
    public static List<Tracee> CreateThreads(Tracee leader, ProcessImage process, bool restoreIds, MessageLog log)
    {
        var records = process.Threads;
        var leaderName = records[0].Name;
        var threads = records.Skip(1)
            .Select(r => new NewThread(restoreIds ? r.Tid : null, r.ClearChildTid, ThreadRestore.KernelStateCalls(r, leader: false, leaderName)))
            .ToList();
        return leader.CreateThreads(ThreadRestore.KernelStateCalls(records[0], leader: true, leaderName), threads,
            (i, errno) => errno == Errno.EEXIST
                ? new RestartException(RestartFailure.PidInUse,
                    $"thread id {records[i + 1].Tid} is in use by another process. Use -NoRestorePid to restart with new ids.", records[i + 1].Tid.ToString())
                : new NativeException("clone3 of a thread", (int)errno));
    }
}
