namespace CrCheckpoint.Engine.Schema;

/// <summary>The Process record: everything per process that is not per thread, memory or files.</summary>
public sealed class ProcessRecord
{
    public int Pid { get; init; }
    public int ParentPid { get; init; }
    public int ProcessGroupId { get; init; }
    public int SessionId { get; init; }
    public int TtyNumber { get; init; }
    public int ForegroundProcessGroup { get; init; }
    public string Name { get; init; } = "";
    public string Executable { get; init; } = "";
    public FileIdentity? ExecutableIdentity { get; init; }
    public string[] CommandLine { get; init; } = [];
    /// <summary>The state letter of /proc/PID/stat when the checkpoint began (R, S, T...).</summary>
    public string StateAtCheckpoint { get; init; } = "";
    public bool WasStopped { get; init; }
    /// <summary>The signal of the job-control stop the process was in (19 SIGSTOP, 20 SIGTSTP...); null when not stopped, or in files before 1.2.</summary>
    public int? StopSignal { get; init; }
    public string WorkingDirectory { get; init; } = "";
    public string Root { get; init; } = "/";
    public int Umask { get; init; }
    public uint Personality { get; init; }
    public CredentialsRecord Credentials { get; init; } = new();
    public List<ResourceLimitRecord> Limits { get; init; } = [];
    public MemoryLayoutRecord MemoryLayout { get; init; } = new();
    public SignalStateRecord Signals { get; init; } = new();
    public List<IntervalTimerRecord> Timers { get; init; } = [];
    public int[] ThreadIds { get; init; } = [];
    /// <summary>The membarrier(2) commands the process registered for (MEMBARRIER_CMD_GET_REGISTRATIONS).</summary>
    public int MembarrierRegistrations { get; init; }
    /// <summary>POSIX timers (timer_create); since 1.1.</summary>
    public List<PosixTimerRecord> PosixTimers { get; init; } = [];
    /// <summary>prctl(PR_GET_DUMPABLE): giving the ids back at restart clears it, so it is set again after. Absent in files before 1.1.</summary>
    public int? Dumpable { get; init; }
    /// <summary>oom_score_adj, loginuid, PR_SET_THP_DISABLE, PR_SET_CHILD_SUBREAPER; since 1.2 (absent: left as the restart makes them).</summary>
    public ProcessControlsRecord? Controls { get; init; }
    /// <summary>The cgroup of each hierarchy (/proc/PID/cgroup); since 1.2 (absent: left as the restart makes them).</summary>
    public List<CgroupRecord>? Cgroups { get; init; }
    /// <summary>The process had exited and waited for its parent to reap it; only its exit status is kept.</summary>
    public bool Zombie { get; init; }
    /// <summary>A zombie's wait status (exit code in bits 8-15, or the killing signal in bits 0-6).</summary>
    public int ExitStatus { get; init; }
}

/// <summary>The mm fields a restart gives back with prctl(PR_SET_MM_MAP).</summary>
public sealed class MemoryLayoutRecord
{
    public ulong StartCode { get; init; }
    public ulong EndCode { get; init; }
    public ulong StartData { get; init; }
    public ulong EndData { get; init; }
    public ulong StartBrk { get; init; }
    public ulong Brk { get; init; }
    public ulong StartStack { get; init; }
    public ulong ArgStart { get; init; }
    public ulong ArgEnd { get; init; }
    public ulong EnvStart { get; init; }
    public ulong EnvEnd { get; init; }
    /// <summary>The raw auxiliary vector (/proc/PID/auxv).</summary>
    public byte[] Auxv { get; init; } = [];
}

/// <summary>
/// User and group ids, capability sets and securebits. Credentials belong to each thread: the
/// Process record holds the main thread's, and a Thread record holds its own only where they differ.
/// </summary>
public sealed class CredentialsRecord
{
    /// <summary>Real, effective, saved set and filesystem user ids.</summary>
    public uint[] Uids { get; init; } = [];
    public uint[] Gids { get; init; } = [];
    public uint[] Groups { get; init; } = [];
    public ulong CapInheritable { get; init; }
    public ulong CapPermitted { get; init; }
    public ulong CapEffective { get; init; }
    public ulong CapBounding { get; init; }
    public ulong CapAmbient { get; init; }
    public bool NoNewPrivileges { get; init; }
    /// <summary>0 none, 1 strict, 2 filter (as the Seccomp: line of /proc/PID/status).</summary>
    public int SeccompMode { get; init; }
    /// <summary>prctl(PR_GET_SECUREBITS); since 1.2 (absent: 0).</summary>
    public int Securebits { get; init; }

    /// <summary>Same ids, groups, capabilities and securebits (no_new_privs and seccomp belong to the thread's sandbox record).</summary>
    public bool SameAs(CredentialsRecord o) =>
        Uids.AsSpan().SequenceEqual(o.Uids) && Gids.AsSpan().SequenceEqual(o.Gids) && Groups.AsSpan().SequenceEqual(o.Groups) &&
        CapInheritable == o.CapInheritable && CapPermitted == o.CapPermitted && CapEffective == o.CapEffective &&
        CapBounding == o.CapBounding && CapAmbient == o.CapAmbient && Securebits == o.Securebits;
}

/// <summary>Process-wide signal state: dispositions and the shared pending queue.</summary>
public sealed class SignalStateRecord
{
    /// <summary>Only signals whose disposition is not the default are listed.</summary>
    public List<SignalDispositionRecord> Dispositions { get; init; } = [];
    /// <summary>siginfo_t (128 bytes) of each signal queued for the whole process, oldest first.</summary>
    public List<byte[]> SharedPending { get; init; } = [];
}

public sealed class SignalDispositionRecord
{
    public int Signal { get; init; }
    public string Name { get; init; } = "";
    /// <summary>0 is SIG_DFL, 1 is SIG_IGN, anything else the handler's address.</summary>
    public ulong Handler { get; init; }
    public ulong Flags { get; init; }
    public ulong Restorer { get; init; }
    public ulong Mask { get; init; }
}

/// <summary>One resource limit (prlimit64 reads another process's limits directly, no remote call).</summary>
public sealed class ResourceLimitRecord
{

    public int Resource { get; init; }
    public string Name { get; init; } = "";
    /// <summary>ulong.MaxValue is RLIM_INFINITY.</summary>
    public ulong Soft { get; init; }
    public ulong Hard { get; init; }

}

/// <summary>One armed interval timer (setitimer): ITIMER_REAL, ITIMER_VIRTUAL or ITIMER_PROF.</summary>
public sealed class IntervalTimerRecord
{

    public int Which { get; init; }
    public string Name { get; init; } = "";
    public long IntervalMicroseconds { get; init; }
    public long ValueMicroseconds { get; init; }

}

/// <summary>One POSIX timer (timer_create): its id, clock, how it notifies, and its time left and period.</summary>
public sealed class PosixTimerRecord
{
    public int Id { get; init; }
    public int Clock { get; init; }
    public int Signal { get; init; }
    /// <summary>sigev_value, handed to the program with each signal.</summary>
    public ulong Value { get; init; }
    /// <summary>sigev_notify: SIGEV_SIGNAL 0, SIGEV_NONE 1, with SIGEV_THREAD_ID 4 for a signal to one thread.</summary>
    public int Notify { get; init; }
    public int ThreadId { get; init; }
    public long[] Interval { get; init; } = [0, 0];
    public long[] Remaining { get; init; } = [0, 0];
}

/// <summary>
/// Per-process settings the kernel keeps outside memory, files and credentials: oom_score_adj,
/// the audit loginuid, the transparent huge page switch (PR_SET_THP_DISABLE), the child subreaper
/// flag, and each thread's parent-death signal; the dumpable flag is set again here too. Absent
/// (null) in files before 1.2.
/// </summary>
public sealed class ProcessControlsRecord
{
    /// <summary>/proc/PID/oom_score_adj, -1000 to 1000.</summary>
    public int OomScoreAdj { get; init; }
    /// <summary>/proc/PID/loginuid; 4294967295 is unset.</summary>
    public uint LoginUid { get; init; } = uint.MaxValue;
    /// <summary>prctl(PR_GET_THP_DISABLE): 0 enabled, 1 disabled, 3 disabled except where madvise asks.</summary>
    public int ThpDisable { get; init; }
    /// <summary>prctl(PR_GET_CHILD_SUBREAPER).</summary>
    public bool ChildSubreaper { get; init; }
}

/// <summary>The cgroup a process was in, in one hierarchy (one line of /proc/PID/cgroup).</summary>
public sealed class CgroupRecord
{
    /// <summary>The hierarchy's id when saved; ids can change when a hierarchy is mounted again, so the restart goes by <see cref="Controllers"/>.</summary>
    public int Hierarchy { get; init; }
    /// <summary>"cpu,cpuacct", "name=systemd"...; empty for the unified (v2) hierarchy.</summary>
    public string Controllers { get; init; } = "";
    public string Path { get; init; } = "/";
}

/// <summary>
/// One thread's scheduling: policy and its parameters (struct sched_attr), nice value and CPU
/// affinity. All three belong to the thread, and the engine reads and sets them from outside
/// (sched_getattr/sched_setattr, getpriority/setpriority, sched_getaffinity/sched_setaffinity on
/// the thread id), so neither side costs a remote call. Absent (null) in files before 1.2.
/// </summary>
public sealed class SchedulingRecord
{
    /// <summary>SCHED_OTHER 0, FIFO 1, RR 2, BATCH 3, IDLE 5, DEADLINE 6.</summary>
    public int Policy { get; init; }
    /// <summary>sched_attr.sched_flags as sched_getattr reports them (SCHED_FLAG_RESET_ON_FORK 1...).</summary>
    public ulong Flags { get; init; }
    /// <summary>-20 to 19; kept for every policy (a real-time thread keeps one for when it leaves it).</summary>
    public int Nice { get; init; }
    /// <summary>Real-time priority, 1 to 99, for FIFO and RR.</summary>
    public int Priority { get; init; }
    public ulong Runtime { get; init; }
    public ulong Deadline { get; init; }
    public ulong Period { get; init; }
    public uint UtilMin { get; init; }
    public uint UtilMax { get; init; }
    /// <summary>The CPU mask of sched_getaffinity, as the kernel's bytes.</summary>
    public byte[] Affinity { get; init; } = [];

    internal bool SamePolicyAs(SchedulingRecord o) =>
        Policy == o.Policy && Flags == o.Flags && Priority == o.Priority && Runtime == o.Runtime &&
        Deadline == o.Deadline && Period == o.Period && UtilMin == o.UtilMin && UtilMax == o.UtilMax;
}
