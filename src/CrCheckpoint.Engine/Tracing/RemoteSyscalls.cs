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
    private ScratchPage? _page;
    private bool _signalsBlocked;

    /// <summary>
    /// Readies the thread for remote calls: finds a `syscall` instruction in its executable memory
    /// (<paramref name="areas"/>, or its maps read now). The scratch page is mapped on first use.
    /// </summary>
    public void Prepare(IReadOnlyList<Proc.MemoryArea>? areas = null) =>
        _syscallAddress = SyscallInstruction.Find(Pid, areas ?? Proc.ProcMaps.Read(Pid));

    /// <summary>
    /// Readies a process about to be rebuilt: its scratch page is mapped executable (batches run from
    /// it) at a free address that none of <paramref name="keepClear"/> (the areas the rebuild will
    /// map, in this process or in any child forked from it) overlaps, with MAP_FIXED_NOREPLACE.
    /// </summary>
    public void PrepareForRebuild(IEnumerable<(ulong Start, ulong End)> keepClear)
    {
        var used = Proc.ProcMaps.Read(Pid).Select(a => (a.Start, a.End)).Concat(keepClear);
        var address = State.Memory.AddressSpace.FindFree(used, ScratchPage.Size);
        const long PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4, MAP_PRIVATE = 2, MAP_ANONYMOUS = 0x20, MAP_FIXED_NOREPLACE = 0x100000;
        var mapped = (ulong)CheckedSyscall("mmap (scratch)", Syscalls.mmap, (long)address, ScratchPage.Size, PROT_READ | PROT_WRITE | PROT_EXEC,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (mapped != address) throw new InvalidOperationException($"scratch page landed at 0x{mapped:x}, not 0x{address:x}");
        _page = new ScratchPage(this, address, loopWritten: false);
    }

    /// <summary>Where the scratch page lies, for a rebuild that unmaps everything else.</summary>
    public (ulong Start, ulong End) ScratchArea => (Page.Address, Page.Address + ScratchPage.Size);

    /// <summary>Frees room in the scratch page (see <see cref="Tracing.Scratch"/>) until disposed.</summary>
    public Scratch Scratch() => new(Page);

    internal ScratchPage Page => _page ??= new ScratchPage(this);

    /// <summary>
    /// Threads of one process share its memory: the others run their remote calls with the scratch
    /// page and syscall instruction of <paramref name="owner"/>, which alone unmaps the page.
    /// </summary>
    internal void ShareRemoteStateOf(Tracee owner)
    {
        _page = owner.Page;
        _syscallAddress = owner._syscallAddress;
    }

    /// <summary>
    /// A remote mremap(MREMAP_FIXED) of a mapping; when remote calls run on a syscall instruction
    /// inside it (the vDSO's), they follow it.
    /// </summary>
    public void Remap(ulong from, ulong length, ulong to)
    {
        const long MREMAP_MAYMOVE = 1, MREMAP_FIXED = 2;
        CheckedSyscall("mremap", Syscalls.mremap, (long)from, (long)length, (long)length, MREMAP_MAYMOVE | MREMAP_FIXED, (long)to);
        if (_syscallAddress >= from && _syscallAddress < from + length) _syscallAddress = _syscallAddress - from + to;
    }

    private const ulong CLONE_PARENT = 0x00008000, SIGCHLD = 17;

    /// <summary>
    /// A new process forked by this one (a remote clone3, with set_tid when <paramref name="pid"/>
    /// is given), traced from birth and frozen. A <paramref name="sibling"/> is this process's
    /// sibling (CLONE_PARENT: from a stub, a child of the engine), starts with no scratch page, and
    /// keeps PTRACE_O_TRACEFORK only: its threads will be made with CLONE_PTRACE
    /// (<see cref="CreateThreads"/>), which stops no one. Any other child is a copy of this process,
    /// scratch page included, which it owns. A pid in use is <see cref="NativeException"/> EEXIST.
    /// </summary>
    public Tracee ForkProcess(int? pid, bool sibling)
    {
        long created;
        using (var scratch = Scratch())
        {
            // struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size,
            // tls, set_tid, set_tid_size, cgroup; the stack stays 0, for the new task never runs
            // before its registers are replaced. exit_signal must be 0 with CLONE_PARENT.
            var args = new ulong[11];
            args[0] = sibling ? CLONE_PARENT : 0;
            args[4] = sibling ? 0 : SIGCHLD;
            if (pid is { } wanted)
            {
                args[8] = scratch.Struct(wanted).Address;
                args[9] = 1;
            }
            created = CheckedSyscall("clone3 of a process", Syscalls.clone3, scratch.Bytes(MemoryMarshal.AsBytes(args.AsSpan())), args.Length * 8);
        }
        var child = Adopt((int)created, (int)created);
        child._syscallAddress = _syscallAddress;
        if (sibling) child.SetOptions(PTRACE_O_TRACEFORK | PTRACE_O_EXITKILL);
        else child._page = new ScratchPage(child, Page.Address, Page.LoopWritten);
        return child;
    }

    /// <summary>Runs one system call in the thread and returns its raw result (see <see cref="RemoteResult"/>).</summary>
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
        return RemoteResult.Check(Syscall(number, a1, a2, a3, a4, a5, a6), $"{name} in process {Pid}");
    }

    private void CleanUpRemoteState()
    {
        if (_page is { IsMapped: true } page && page.IsOwnedBy(this))
        {
            Syscall(Syscalls.munmap, (long)page.Address, ScratchPage.Size);
            page.Unmapped();
        }
        _page = null;
        _signalsBlocked = false;
    }
}
