using CrCheckpoint.Engine.Native;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.Tracing;

/// <summary>
/// One thread held with PTRACE_SEIZE. The whole compel-like surface lives here and in
/// <see cref="RemoteSyscalls"/>: seize and freeze, registers, FPU state, signal mask, remote system
/// calls, and <see cref="Release"/>, which puts back every register and the mask before detaching so
/// that a traced process carries on exactly as before.
/// All calls must come from the thread that called <see cref="Seize"/> (see <see cref="TracerThread"/>).
/// </summary>
public sealed unsafe partial class Tracee : IDisposable
{
    private Registers _original;
    private ulong _originalSigMask;
    private bool _attached;
    private readonly List<int> _deferredSignals = new();

    private Tracee(int pid, int tid)
    {
        Pid = pid;
        Tid = tid;
    }

    public int Pid { get; }
    public int Tid { get; }

    /// <summary>The registers as they were when the thread was frozen.</summary>
    public Registers OriginalRegisters => _original;

    /// <summary>The blocked-signal mask as it was when the thread was frozen.</summary>
    public ulong OriginalSignalMask => _originalSigMask;

    /// <summary>The signal of the job-control stop the thread was in when it was seized (SIGSTOP, SIGTSTP...), or 0.</summary>
    public int GroupStopSignal { get; private set; }

    /// <summary>Attaches without stopping, then interrupts and waits until the thread is frozen.</summary>
    public static Tracee Seize(int pid, int tid, int options = 0) =>
        SeizeAll(pid, [tid], options) is [var tracee] ? tracee : throw new TraceeGoneException(tid, "exiting");

    /// <summary>
    /// Seizes threads side by side: every one is attached and interrupted before any is waited
    /// for, so that their stops overlap instead of following one another. A thread that is gone,
    /// or exiting, by the time it is reached is left out of the result.
    /// </summary>
    internal static List<Tracee> SeizeAll(int pid, IEnumerable<int> tids, int options)
    {
        var interrupted = new List<(Tracee? Tracee, int Tid)>();
        var held = new List<Tracee>();
        try
        {
            foreach (var tid in tids)
            {
                if (ptrace(PTRACE_SEIZE, tid, 0, options | PTRACE_O_TRACESYSGOOD) == -1)
                {
                    var errno = ErrnoCheck.LastErrno;
                    // A thread born while its siblings were being frozen is attached to us already (TRACECLONE).
                    if (errno == (int)Errno.EPERM && IsTracedByUs(pid, tid)) interrupted.Add((null, tid));
                    // The kernel refuses to attach to a thread that is exiting: it is as good as gone.
                    else if (errno == (int)Errno.ESRCH || (errno == (int)Errno.EPERM && IsExiting(pid, tid))) continue;
                    else
                        throw errno == (int)Errno.EPERM
                            ? new UnauthorizedAccessException(
                                $"cannot trace process {pid}: it is already being traced, or this user lacks the privilege (CAP_SYS_PTRACE) to trace it")
                            : new NativeException($"ptrace(PTRACE_SEIZE, {tid})", errno);
                    continue;
                }
                var tracee = new Tracee(pid, tid) { _attached = true };
                held.Add(tracee);
                tracee.Interrupt();
                interrupted.Add((tracee, tid));
            }

            var frozen = new List<Tracee>();
            foreach (var (tracee, tid) in interrupted)
            {
                try
                {
                    if (tracee is null)
                    {
                        var adopted = Adopt(pid, tid);
                        held.Add(adopted);
                        frozen.Add(adopted);
                    }
                    else
                    {
                        tracee.WaitFrozen();
                        frozen.Add(tracee);
                    }
                }
                catch (TraceeGoneException)
                {
                }
            }
            return frozen;
        }
        catch
        {
            foreach (var t in held) t.DetachQuietly();
            throw;
        }
    }

    private void Interrupt()
    {
        if (ptrace(PTRACE_INTERRUPT, Tid, 0, 0) == -1)
            throw new NativeException($"ptrace(PTRACE_INTERRUPT, {Tid})", ErrnoCheck.LastErrno);
    }

    private void WaitFrozen()
    {
        while (true)
        {
            var status = WaitForStop();
            if (status.PtraceEvent == PTRACE_EVENT_STOP)
            {
                var sig = status.StopSignal;
                // The kernel reports the signal of the group stop in effect, SIGTRAP when there is none.
                if (sig is Signals.SIGSTOP or Signals.SIGTSTP or Signals.SIGTTIN or Signals.SIGTTOU)
                    GroupStopSignal = sig;
                break;
            }

            // Any other stop takes the place of the interrupt (ptrace(2): "if any other ptrace-stop is
            // generated at the same time, this ptrace-stop happens"), so after letting the thread go
            // on, it is interrupted again. A fork or clone event: the new task is ours already
            // (TRACEFORK/TRACECLONE). A signal about to be delivered: delivered, as the kernel would have.
            Resume(PTRACE_CONT, status.PtraceEvent != 0 ? 0 : status.StopSignal);
            Interrupt();
        }

        _original = GetRegisters();
        _originalSigMask = GetSignalMask();
    }

    /// <summary>What /proc says the thread is doing, for a message about a stop that does not come.</summary>
    private string DescribeState()
    {
        try
        {
            var state = Proc.ProcStat.Read(Pid, Tid).State;
            var wchan = Proc.ProcText.Read($"/proc/{Pid}/task/{Tid}/wchan").Trim();
            return $"state {state}{(wchan is "" or "0" ? "" : $", in the kernel at {wchan}")}";
        }
        catch (IOException)
        {
            return "gone from /proc";
        }
    }

    private static bool IsExiting(int pid, int tid)
    {
        const uint PF_EXITING = 0x4;
        try
        {
            var stat = Proc.ProcStat.Read(pid, tid);
            return stat.State is 'Z' or 'X' || (stat.Flags & PF_EXITING) != 0;
        }
        catch (IOException)
        {
            return true;
        }
    }

    /// <summary>
    /// True when this very thread traces <paramref name="tid"/>: /proc shows the tracer's thread id,
    /// and only the thread that seized a tracee may drive it.
    /// </summary>
    private static bool IsTracedByUs(int pid, int tid)
    {
        try
        {
            return Proc.ProcStatus.Read(pid, tid).TracerPid == (int)Interop.syscall(Syscalls.gettid);
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>
    /// Takes over a thread the kernel attached to us on its own (a clone of a tracee with
    /// PTRACE_O_TRACECLONE/TRACEFORK): waits for its first stop instead of seizing it.
    /// </summary>
    internal static Tracee Adopt(int pid, int tid)
    {
        var tracee = new Tracee(pid, tid) { _attached = true };
        var status = tracee.WaitForStop();
        if (status.PtraceEvent != PTRACE_EVENT_STOP)
            throw new InvalidOperationException($"new process {tid} first stopped with {status}, expected its attach stop");
        tracee._original = tracee.GetRegisters();
        tracee._originalSigMask = tracee.GetSignalMask();
        return tracee;
    }

    internal void SetOptions(int options)
    {
        if (ptrace(PTRACE_SETOPTIONS, Tid, 0, options | PTRACE_O_TRACESYSGOOD) == -1)
            throw new NativeException($"ptrace(PTRACE_SETOPTIONS, {Tid})", ErrnoCheck.LastErrno);
    }

    /// <summary>
    /// Replaces what <see cref="Release"/> will put back: a rebuilt process leaves with the
    /// checkpointed registers and mask, not those it was created with.
    /// </summary>
    public void SetFinalState(in Registers registers, ulong signalMask)
    {
        _original = registers;
        _originalSigMask = signalMask;
    }

    [ThreadStatic] private static long t_deadlineMs;
    [ThreadStatic] private static string? t_deadlineWhat;

    /// <summary>
    /// Bounds every wait of this tracer thread (a checkpoint's -TimeoutSec): past it, a wait for a stop
    /// throws <see cref="TimeoutException"/>. Null lifts the bound (releasing must always finish).
    /// </summary>
    public static void SetDeadline(TimeSpan? left, string? what = null)
    {
        t_deadlineMs = left is { } l ? Environment.TickCount64 + Math.Max(1, (long)l.TotalMilliseconds) : 0;
        t_deadlineWhat = what;
    }

    /// <summary>Throws <see cref="TimeoutException"/> once the deadline of <see cref="SetDeadline"/> has passed.</summary>
    public static void CheckDeadline(string doing)
    {
        if (t_deadlineMs != 0 && Environment.TickCount64 > t_deadlineMs)
            throw new TimeoutException($"{t_deadlineWhat ?? "the operation"} timed out {doing}");
    }

    /// <summary>Waits for this thread's next stop; exits and kills become <see cref="TraceeGoneException"/>.</summary>
    internal WaitStatus WaitForStop()
    {
        var polls = 0;
        while (true)
        {
            int raw;
            var bounded = t_deadlineMs != 0;
            var r = waitpid(Tid, &raw, __WALL | (bounded ? WNOHANG : 0));
            if (r == 0)
            {
                if (t_deadlineMs != 0 && Environment.TickCount64 > t_deadlineMs && _remoteBusy)
                {
                    // Inside a remote call the thread runs with our registers: it is interrupted and
                    // waited for first, so that the release can put its own back.
                    var state = DescribeState();
                    ptrace(PTRACE_INTERRUPT, Tid, 0, 0);
                    t_deadlineMs = 0;
                    try { WaitForStop(); }
                    finally { SetDeadline(TimeSpan.Zero, t_deadlineWhat); }
                    _remoteBusy = false;
                    throw new TimeoutException($"{t_deadlineWhat ?? "the operation"} timed out in a system call made in thread {Tid} of process {Pid} ({state})");
                }
                // Still running: a stop usually comes within microseconds, so yield before sleeping.
                CheckDeadline($"waiting for thread {Tid} of process {Pid} to stop ({DescribeState()})");
                if (++polls < 200) Thread.Yield();
                else Thread.Sleep(1);
                continue;
            }
            if (r == -1)
            {
                var errno = ErrnoCheck.LastErrno;
                if (errno == (int)Errno.EINTR) continue;
                _attached = false;
                throw new TraceeGoneException(Tid, $"waitpid: {Marshal.GetPInvokeErrorMessage(errno)}");
            }

            var status = new WaitStatus(raw);
            if (status.Exited || status.Signaled)
            {
                _attached = false;
                throw new TraceeGoneException(Tid, status.ToString());
            }
            return status;
        }
    }

    private void Resume(int request, int signal)
    {
        if (ptrace(request, Tid, 0, signal) == -1)
            throw new NativeException($"ptrace({request}, {Tid})", ErrnoCheck.LastErrno);
    }

    internal Registers GetRegisters()
    {
        Registers regs;
        if (ptrace(PTRACE_GETREGS, Tid, 0, (nint)(&regs)) == -1)
            throw new NativeException($"ptrace(PTRACE_GETREGS, {Tid})", ErrnoCheck.LastErrno);
        return regs;
    }

    internal void SetRegisters(in Registers regs)
    {
        fixed (Registers* p = &regs)
        {
            if (ptrace(PTRACE_SETREGS, Tid, 0, (nint)p) == -1)
                throw new NativeException($"ptrace(PTRACE_SETREGS, {Tid})", ErrnoCheck.LastErrno);
        }
    }

    /// <summary>The full XSAVE area (x87, SSE, AVX and whatever else the CPU has enabled).</summary>
    public byte[] GetExtendedState()
    {
        // Room for any XSAVE layout; the kernel says how much it filled (a few KiB).
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            fixed (byte* p = buffer)
            {
                var iov = new IoVec { Base = (nint)p, Length = (nuint)buffer.Length };
                if (ptrace(PTRACE_GETREGSET, Tid, NT_X86_XSTATE, (nint)(&iov)) == -1)
                    throw new NativeException($"ptrace(PTRACE_GETREGSET NT_X86_XSTATE, {Tid})", ErrnoCheck.LastErrno);
                return buffer.AsSpan(0, (int)iov.Length).ToArray();
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public void SetExtendedState(byte[] xstate)
    {
        fixed (byte* p = xstate)
        {
            var iov = new IoVec { Base = (nint)p, Length = (nuint)xstate.Length };
            if (ptrace(PTRACE_SETREGSET, Tid, NT_X86_XSTATE, (nint)(&iov)) == -1)
                throw new NativeException($"ptrace(PTRACE_SETREGSET NT_X86_XSTATE, {Tid})", ErrnoCheck.LastErrno);
        }
    }

    internal ulong GetSignalMask()
    {
        ulong mask;
        if (ptrace(PTRACE_GETSIGMASK, Tid, sizeof(ulong), (nint)(&mask)) == -1)
            throw new NativeException($"ptrace(PTRACE_GETSIGMASK, {Tid})", ErrnoCheck.LastErrno);
        return mask;
    }

    internal void SetSignalMask(ulong mask)
    {
        if (ptrace(PTRACE_SETSIGMASK, Tid, sizeof(ulong), (nint)(&mask)) == -1)
            throw new NativeException($"ptrace(PTRACE_SETSIGMASK, {Tid})", ErrnoCheck.LastErrno);
    }

    /// <summary>The rseq area the thread registered (glibc registers one per thread), or null.</summary>
    public PtraceRseqConfiguration? GetRseqConfiguration()
    {
        PtraceRseqConfiguration config;
        var r = ptrace(PTRACE_GET_RSEQ_CONFIGURATION, Tid, sizeof(PtraceRseqConfiguration), (nint)(&config));
        if (r == -1) return null;
        return config.RseqAbiPointer == 0 ? null : config;
    }

    /// <summary>Pending signals with their siginfo (128 bytes each), private or process-wide queue.</summary>
    public List<byte[]> PeekPendingSignals(bool shared)
    {
        var result = new List<byte[]>();
        var buffer = new byte[128];
        for (ulong offset = 0; ; offset++)
        {
            var args = new PtracePeekSigInfoArgs { Offset = offset, Flags = shared ? (uint)PTRACE_PEEKSIGINFO_SHARED : 0, Count = 1 };
            fixed (byte* p = buffer)
            {
                var n = ptrace(PTRACE_PEEKSIGINFO, Tid, (nint)(&args), (nint)p);
                if (n == -1) throw new NativeException($"ptrace(PTRACE_PEEKSIGINFO, {Tid})", ErrnoCheck.LastErrno);
                if (n == 0) break;
            }
            result.Add((byte[])buffer.Clone());
        }
        return result;
    }

    /// <summary>
    /// Remote calls the thread makes at the very end, once the scratch page is gone (a restarted
    /// thread's sandbox: once installed, it may forbid any other call).
    /// </summary>
    public Action<Tracee>? LastCalls { get; set; }

    /// <summary>
    /// Puts back the registers and signal mask the thread was frozen with, then detaches.
    /// <paramref name="signal"/> is handed over by PTRACE_DETACH itself, so a SIGSTOP stops the
    /// process before it runs a single instruction. Signals that arrived while remote calls ran are
    /// re-sent so that none is lost.
    /// </summary>
    public void Release(int signal = 0)
    {
        if (!_attached) return;
        CleanUpRemoteState();
        if (LastCalls is { } last)
        {
            LastCalls = null;
            last(this);
        }
        SetRegisters(_original);
        SetSignalMask(_originalSigMask);
        if (ptrace(PTRACE_DETACH, Tid, 0, signal) == -1)
        {
            var errno = ErrnoCheck.LastErrno;
            _attached = false;
            if (errno != (int)Errno.ESRCH) throw new NativeException($"ptrace(PTRACE_DETACH, {Tid})", errno);
        }
        _attached = false;
        foreach (var sig in _deferredSignals.Where(s => s != signal)) Interop.kill(Pid, sig);
        _deferredSignals.Clear();
    }

    /// <summary>
    /// Like <see cref="Release"/>, but leaves the process in a job-control stop by
    /// <paramref name="signal"/>, entered while it is still traced so that the kernel itself says
    /// which stop it is in: the signal is sent, taken with every other signal blocked, and the
    /// resulting group stop is reported to us (PTRACE_EVENT_STOP carries its signal) before the detach,
    /// which keeps the stop in effect. Returns the stop signal the kernel reported (SIGTRAP when it
    /// discarded the signal, as it does for SIGTSTP, SIGTTIN and SIGTTOU in an orphaned process group).
    /// </summary>
    public int ReleaseStopped(int signal)
    {
        if (!_attached) return 0;
        CleanUpRemoteState();
        if (LastCalls is { } last)
        {
            LastCalls = null;
            last(this);
        }
        SetRegisters(_original);
        SetSignalMask(~(1UL << (signal - 1)));
        Interop.syscall(Syscalls.tgkill, Pid, Tid, signal);
        Resume(PTRACE_CONT, 0);
        int reported;
        while (true)
        {
            var status = WaitForStop();
            if (status.PtraceEvent == PTRACE_EVENT_STOP)
            {
                reported = status.StopSignal;
                break;
            }
            if (status.PtraceEvent == 0 && status.StopSignal == signal)
            {
                // Delivered now; should the kernel discard it, the interrupt stops the thread anyway.
                Resume(PTRACE_CONT, signal);
                Interrupt();
                continue;
            }
            if (status.PtraceEvent == 0) _deferredSignals.Add(status.StopSignal);
            Resume(PTRACE_CONT, 0);
        }
        SetSignalMask(_originalSigMask);
        if (ptrace(PTRACE_DETACH, Tid, 0, 0) == -1 && ErrnoCheck.LastErrno != (int)Errno.ESRCH)
            throw new NativeException($"ptrace(PTRACE_DETACH, {Tid})", ErrnoCheck.LastErrno);
        _attached = false;
        foreach (var sig in _deferredSignals.Where(s => s != signal)) Interop.kill(Pid, sig);
        _deferredSignals.Clear();
        return reported;
    }

    /// <summary>Detaches after a failure, putting back what can be put back and swallowing errors.</summary>
    internal void DetachQuietly()
    {
        if (!_attached) return;
        try { Release(); }
        catch
        {
            ptrace(PTRACE_DETACH, Tid, 0, 0);
            _attached = false;
        }
    }

    /// <summary>Lets the thread take a fatal signal with its default action; returns only by throwing <see cref="TraceeGoneException"/>.</summary>
    public void DieOf(int signal)
    {
        CleanUpRemoteState();
        SetSignalMask(0);
        Interop.syscall(Syscalls.tgkill, Pid, Tid, signal);
        var deliver = 0;
        while (true)
        {
            // SIGKILL takes a traced thread out of its stop at once: ESRCH then, and its exit is still to be waited for.
            if (ptrace(PTRACE_CONT, Tid, 0, deliver) == -1 && ErrnoCheck.LastErrno != (int)Errno.ESRCH)
                throw new NativeException($"ptrace(PTRACE_CONT, {Tid})", ErrnoCheck.LastErrno);
            var status = WaitForStop();
            deliver = status.PtraceEvent == 0 ? status.StopSignal : 0;
        }
    }

    /// <summary>Kills the process and waits until the kernel reports it gone, so its pid is free.</summary>
    public void KillAndReap()
    {
        Interop.kill(Pid, Signals.SIGKILL);
        if (!_attached) return;
        while (true)
        {
            int raw;
            var r = waitpid(Tid, &raw, __WALL);
            if (r == -1 && ErrnoCheck.LastErrno == (int)Errno.EINTR) continue;
            if (r == -1) break;
            var status = new WaitStatus(raw);
            if (status.Exited || status.Signaled) break;
            // A ptrace-exit stop or a stop racing the kill: let it go on dying.
            ptrace(PTRACE_CONT, Tid, 0, 0);
        }
        _attached = false;
    }

    /// <summary>
    /// Kills a child of the engine that was never traced (a stub that could not be seized) and
    /// waits for its end, so that its pid is free.
    /// </summary>
    public static void KillAndReapChild(int pid)
    {
        Interop.kill(pid, Signals.SIGKILL);
        int raw;
        while (waitpid(pid, &raw, __WALL) == -1 && ErrnoCheck.LastErrno == (int)Errno.EINTR) { }
    }

    /// <summary>
    /// Seccomp filter <paramref name="index"/> of the thread (0 is the newest) as BPF instructions,
    /// or null with the errno the kernel refused it with: ENOENT past the oldest, EINVAL for a thread
    /// without filters, EACCES without CAP_SYS_ADMIN.
    /// </summary>
    public byte[]? GetSeccompFilter(int index, out Errno error)
    {
        error = 0;
        var count = ptrace(PTRACE_SECCOMP_GET_FILTER, Tid, index, 0);
        if (count < 0)
        {
            error = (Errno)ErrnoCheck.LastErrno;
            return null;
        }
        var program = new byte[count * 8];
        fixed (byte* p = program)
            if (ptrace(PTRACE_SECCOMP_GET_FILTER, Tid, index, (nint)p) != count)
                throw new NativeException($"ptrace(PTRACE_SECCOMP_GET_FILTER, {Tid})", ErrnoCheck.LastErrno);
        return program;
    }

    /// <summary>The flags filter <paramref name="index"/> was installed with (struct seccomp_metadata), or null with the errno.</summary>
    public ulong? GetSeccompFilterFlags(int index, out Errno error)
    {
        error = 0;
        var metadata = stackalloc ulong[2];
        metadata[0] = (ulong)index;
        metadata[1] = 0;
        if (ptrace(PTRACE_SECCOMP_GET_METADATA, Tid, 16, (nint)metadata) < 0)
        {
            error = (Errno)ErrnoCheck.LastErrno;
            return null;
        }
        return metadata[1];
    }

    public void Dispose() => DetachQuietly();
}
