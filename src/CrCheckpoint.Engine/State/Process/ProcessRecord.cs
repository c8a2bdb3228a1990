using CrCheckpoint.Engine.State.Credentials;
using CrCheckpoint.Engine.State.Limits;
using CrCheckpoint.Engine.State.Memory;
using CrCheckpoint.Engine.State.Signals;
using CrCheckpoint.Engine.State.Timers;

namespace CrCheckpoint.Engine.State.Process;

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
    public List<Timers.PosixTimerRecord> PosixTimers { get; init; } = [];
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

/// <summary>Enough about a file for a restart to notice that it changed since the checkpoint.</summary>
public sealed class FileIdentity
{
    public ulong Device { get; init; }
    public ulong Inode { get; init; }
    public long Size { get; init; }
    public long ModifiedSeconds { get; init; }
    public long ModifiedNanoseconds { get; init; }
    public uint Mode { get; init; }
    /// <summary>Owner and group; since 1.2 (a file the restart makes anew gets them back).</summary>
    public uint? Owner { get; init; }
    public uint? Group { get; init; }
    /// <summary>For a device file, the device it is (st_rdev): a removed device node is made again from it; since 1.2.</summary>
    public ulong? SpecialDevice { get; init; }

    public static FileIdentity From(in Native.Stat st) => new()
    {
        Device = st.Dev, Inode = st.Ino, Size = st.Size, ModifiedSeconds = st.MtimeSec,
        ModifiedNanoseconds = st.MtimeNsec, Mode = st.Mode, Owner = st.Uid, Group = st.Gid,
        SpecialDevice = st.FileType is Native.Stat.S_IFCHR or Native.Stat.S_IFBLK ? st.Rdev : null,
    };

    public bool SameContentAs(FileIdentity other) =>
        Device == other.Device && Inode == other.Inode && Size == other.Size &&
        ModifiedSeconds == other.ModifiedSeconds && ModifiedNanoseconds == other.ModifiedNanoseconds;
}
