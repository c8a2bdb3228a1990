namespace CrCheckpoint.Engine.Schema;

/// <summary>The Thread record: one thread's CPU state and per-thread kernel state.</summary>
public sealed class ThreadRecord
{
    public int Pid { get; init; }
    public int Tid { get; init; }
    public string Name { get; init; } = "";
    /// <summary>user_regs_struct in kernel order: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs.</summary>
    public ulong[] Registers { get; init; } = [];
    /// <summary>
    /// The XSAVE area from PTRACE_GETREGSET NT_X86_XSTATE (x87, SSE, AVX and beyond), without its
    /// trailing zero bytes: the state components a program never used read as zeros, and are most
    /// of the area. <see cref="ExtendedStateSize"/> is the whole area's size.
    /// </summary>
    public byte[] ExtendedState { get; init; } = [];
    /// <summary>The XSAVE area's size; absent (0) in files before 1.1, whose area is whole.</summary>
    public int ExtendedStateSize { get; init; }

    /// <summary>The whole XSAVE area, its trailing zeros put back.</summary>
    public byte[] FullExtendedState()
    {
        if (ExtendedStateSize <= ExtendedState.Length) return ExtendedState;
        var whole = new byte[ExtendedStateSize];
        ExtendedState.CopyTo(whole, 0);
        return whole;
    }
    public ulong BlockedSignals { get; init; }
    /// <summary>siginfo_t of each signal queued for this thread alone.</summary>
    public List<byte[]> PendingSignals { get; init; } = [];
    public AltStackRecord? AltStack { get; init; }
    public RseqRecord? Rseq { get; init; }
    public ulong ClearChildTid { get; init; }
    public ulong RobustListHead { get; init; }
    public ulong RobustListLength { get; init; }
    public InterruptedSyscallRecord? InterruptedSyscall { get; init; }
    /// <summary>no_new_privs and seccomp; null for a thread without either.</summary>
    public SeccompRecord? Sandbox { get; init; }
    /// <summary>The thread's own ids, capabilities and securebits where they differ from the process's; since 1.2.</summary>
    public CredentialsRecord? Credentials { get; init; }
    /// <summary>Policy, nice value and CPU affinity; since 1.2 (absent: left as the restart makes them).</summary>
    public SchedulingRecord? Scheduling { get; init; }
    /// <summary>prctl(PR_GET_PDEATHSIG): the signal the thread gets when its parent dies, 0 none; since 1.2.</summary>
    public int ParentDeathSignal { get; init; }
}

public sealed class AltStackRecord
{
    public ulong Base { get; init; }
    public int Flags { get; init; }
    public ulong Size { get; init; }
}

public sealed class RseqRecord
{
    public ulong Address { get; init; }
    public uint Length { get; init; }
    public uint Signature { get; init; }
}

/// <summary>The thread was frozen inside a system call that the kernel would restart.</summary>
public sealed class InterruptedSyscallRecord
{
    public long Number { get; init; }
    /// <summary>-512 ERESTARTSYS, -513 ERESTARTNOINTR, -514 ERESTARTNOHAND, -516 ERESTART_RESTARTBLOCK.</summary>
    public long ReturnCode { get; init; }
}

/// <summary>A thread's sandbox: no_new_privs, and its seccomp mode with the BPF filters it installed, oldest first.</summary>
public sealed class SeccompRecord
{
    public bool NoNewPrivileges { get; init; }
    /// <summary>0 none, 1 strict, 2 filters.</summary>
    public int Mode { get; init; }
    public List<SeccompFilterRecord> Filters { get; init; } = [];
}

public sealed class SeccompFilterRecord
{
    /// <summary>SECCOMP_FILTER_FLAG_* the filter was installed with (log, spec_allow).</summary>
    public ulong Flags { get; init; }
    /// <summary>The struct sock_filter instructions, 8 bytes each.</summary>
    public byte[] Program { get; init; } = [];
}
