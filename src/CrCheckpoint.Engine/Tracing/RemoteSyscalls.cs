using CrCheckpoint.Engine.Native;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.Tracing;

/// <summary>
/// System calls run inside the frozen thread. Instead of poking a syscall instruction into the
/// target (and having to put the bytes back), the thread is pointed at a `syscall` that already
/// exists in its executable memory (the vDSO has several) and resumed with PTRACE_SYSCALL: it stops
/// at the call's entry and again at its exit. Single-stepping would take one stop less, but the
/// kernel reports a step with a forced SIGTRAP, and a forced signal that is blocked resets the
/// program's SIGTRAP handler to SIG_DFL (sigtrap01 in CRIU's zdtm); syscall stops raise no signal.
/// All signals are blocked while this happens, so none is delivered in the middle; the original
/// mask comes back on release.
/// </summary>
public sealed unsafe partial class Tracee
{
    private ulong _syscallAddress;
    private ulong _scratch;
    private bool _scratchBorrowed;
    private bool _signalsBlocked;

    public const int ScratchSize = 64 * 1024;

    /// <summary>Chooses where remote calls execute: the address of a `0f 05` in the target's code.</summary>
    public void UseSyscallInstructionAt(ulong address) => _syscallAddress = address;

    /// <summary>Runs one system call in the thread and returns its raw result (negative errno on failure).</summary>
    public long Syscall(long number, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0, long a6 = 0)
    {
        BeginSyscall(number, a1, a2, a3, a4, a5, a6);
        return EndSyscall();
    }

    /// <summary>
    /// Runs one call in each of many threads at once: all are started, then all are waited for,
    /// so the threads make their calls side by side instead of one round trip after another.
    /// </summary>
    public static long[] SyscallInEach(IReadOnlyList<(Tracee Thread, long Number, long A1, long A2, long A3, long A4)> calls)
    {
        var started = 0;
        var results = new long[calls.Count];
        Exception? failure = null;
        try
        {
            for (; started < calls.Count; started++)
                calls[started].Thread.BeginSyscall(calls[started].Number, calls[started].A1, calls[started].A2, calls[started].A3, calls[started].A4);
        }
        catch (Exception e)
        {
            failure = e;
        }
        // Every call that started is waited for, even after a failure: a thread must never be
        // left running with the registers of a remote call.
        for (var i = 0; i < started; i++)
        {
            try { results[i] = calls[i].Thread.EndSyscall(); }
            catch (Exception e) { failure ??= e; }
        }
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        return results;
    }

    private void BeginSyscall(long number, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0, long a6 = 0)
    {
        if (_syscallAddress == 0) throw new InvalidOperationException("no syscall instruction chosen in the target");
        if (!_signalsBlocked)
        {
            SetSignalMask(ulong.MaxValue);
            _signalsBlocked = true;
        }

        var regs = _original;
        regs.Rax = (ulong)number;
        regs.Rdi = (ulong)a1;
        regs.Rsi = (ulong)a2;
        regs.Rdx = (ulong)a3;
        regs.R10 = (ulong)a4;
        regs.R8 = (ulong)a5;
        regs.R9 = (ulong)a6;
        regs.Rip = _syscallAddress;
        // -1 keeps the kernel's syscall-restart logic away from the injected registers.
        regs.OrigRax = ulong.MaxValue;
        regs.Eflags &= ~0x100UL;
        SetRegisters(regs);
        _inSyscall = false;
        _remoteBusy = true;
        Resume(PTRACE_SYSCALL, 0);
    }

    private bool _inSyscall;
    /// <summary>The thread is running a remote call, with registers that are not its own.</summary>
    private bool _remoteBusy;
    /// <summary>A syscall-entry or -exit stop with PTRACE_O_TRACESYSGOOD (always set by <see cref="SeizeAll"/> and <see cref="SetOptions"/>).</summary>
    private const int SyscallStop = Signals.SIGTRAP | 0x80;

    private long EndSyscall()
    {
        while (true)
        {
            var status = WaitForStop();
            if (status.PtraceEvent == 0 && status.StopSignal == SyscallStop)
            {
                if (_inSyscall)
                {
                    _remoteBusy = false;
                    return (long)GetRegisters().Rax;
                }
                _inSyscall = true;
            }
            else if (status.PtraceEvent == 0)
            {
                // Only unblockable signals get here (SIGSTOP): keep it for after the release.
                _deferredSignals.Add(status.StopSignal);
            }
            Resume(PTRACE_SYSCALL, 0);
        }
    }

    /// <summary>Like <see cref="Syscall"/> but a negative result becomes a <see cref="NativeException"/>.</summary>
    public long CheckedSyscall(string name, long number, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0, long a6 = 0)
    {
        var r = Syscall(number, a1, a2, a3, a4, a5, a6);
        if (r < 0 && r > -4096) throw new NativeException($"{name} in process {Pid}", (int)-r);
        return r;
    }

    /// <summary>A page in the target for the pointer arguments of remote calls, unmapped on release.</summary>
    public ulong Scratch
    {
        get
        {
            if (_scratch != 0) return _scratch;
            // Shared, so that the kernel never merges it into a private anonymous area of the
            // process next to it: that area must read exactly as it was while it is saved.
            const long PROT_READ = 1, PROT_WRITE = 2, MAP_SHARED = 1, MAP_ANONYMOUS = 0x20;
            _scratch = (ulong)CheckedSyscall("mmap (scratch)", Syscalls.mmap, 0, ScratchSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
            return _scratch;
        }
    }

    /// <summary>Maps the scratch page at a chosen free address (MAP_FIXED_NOREPLACE), where a rebuild will not map over it.</summary>
    public void MapScratchAt(ulong address)
    {
        // Executable too: a rebuild runs batches of calls from it (RemoteBatch).
        const long PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4, MAP_PRIVATE = 2, MAP_ANONYMOUS = 0x20, MAP_FIXED_NOREPLACE = 0x100000;
        _scratch = (ulong)CheckedSyscall("mmap (scratch)", Syscalls.mmap, (long)address, ScratchSize, PROT_READ | PROT_WRITE | PROT_EXEC,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (_scratch != address) throw new InvalidOperationException($"scratch page landed at 0x{_scratch:x}, not 0x{address:x}");
    }

    /// <summary>A forked child has its own copy of its parent's scratch page, at the same address: it owns that copy.</summary>
    public void OwnScratchCopyAt(ulong address)
    {
        _scratch = address;
        _scratchBorrowed = false;
    }

    public ulong SyscallInstructionAddress => _syscallAddress;

    /// <summary>
    /// Threads of one process share its memory: the others run their remote calls with the scratch
    /// page and syscall instruction of <paramref name="owner"/>, which alone unmaps the page.
    /// </summary>
    public void ShareRemoteStateOf(Tracee owner)
    {
        _scratch = owner.Scratch;
        _scratchBorrowed = true;
        _syscallAddress = owner._syscallAddress;
    }

    /// <summary>Copies a NUL-terminated string into the scratch page and returns its address in the target.</summary>
    public long ScratchString(string value, int offset = 0)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(value + "\0");
        if (offset + bytes.Length > ScratchSize) throw new ArgumentException($"path too long for a remote call: {value}");
        WriteScratch(bytes, offset);
        return (long)Scratch + offset;
    }

    public void ReadScratch(Span<byte> destination, int offset = 0) =>
        ProcessMemory.Read(Pid, _scratch + (ulong)offset, destination);

    public void WriteScratch(ReadOnlySpan<byte> source, int offset = 0) =>
        ProcessMemory.Write(Pid, _scratch + (ulong)offset, source);

    private void CleanUpRemoteState()
    {
        if (_scratch != 0 && !_scratchBorrowed)
        {
            Syscall(Syscalls.munmap, (long)_scratch, ScratchSize);
        }
        _scratch = 0;
        _signalsBlocked = false;
        _batchLoopWritten = false;
    }
}
