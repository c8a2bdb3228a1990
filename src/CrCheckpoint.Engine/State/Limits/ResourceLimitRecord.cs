using CrCheckpoint.Engine.Native;

namespace CrCheckpoint.Engine.State.Limits;

/// <summary>One resource limit (prlimit64 reads another process's limits directly, no remote call).</summary>
public sealed class ResourceLimitRecord
{
    public static readonly string[] Names =
    [
        "CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC", "NOFILE", "MEMLOCK", "AS", "LOCKS",
        "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME",
    ];

    public int Resource { get; init; }
    public string Name { get; init; } = "";
    /// <summary>ulong.MaxValue is RLIM_INFINITY.</summary>
    public ulong Soft { get; init; }
    public ulong Hard { get; init; }

    public static unsafe List<ResourceLimitRecord> Capture(int pid)
    {
        var limits = new List<ResourceLimitRecord>();
        for (var r = 0; r < Interop.RLIM_NLIMITS; r++)
        {
            RLimit old;
            if (Interop.prlimit(pid, r, null, &old) == -1)
            {
                var errno = ErrnoCheck.LastErrno;
                // prlimit on another user's process needs CAP_SYS_RESOURCE, which containers often
                // drop even for root; /proc/PID/limits tells the same to anyone.
                if (errno == (int)Errno.EPERM) return FromProcLimits(pid);
                throw new NativeException($"prlimit({pid}, RLIMIT_{Names[r]})", errno);
            }
            limits.Add(new ResourceLimitRecord { Resource = r, Name = Names[r], Soft = old.Current, Hard = old.Max });
        }
        return limits;
    }

    /// <summary>The same limits as /proc/PID/limits tells them to anyone.</summary>
    private static List<ResourceLimitRecord> FromProcLimits(int pid)
    {
        var rows = Proc.ProcLimits.Read(pid);
        if (rows.Count < Interop.RLIM_NLIMITS)
            throw new InvalidDataException($"/proc/{pid}/limits has {rows.Count} limits, not {Interop.RLIM_NLIMITS}");
        return rows.Take(Interop.RLIM_NLIMITS)
            .Select((row, r) => new ResourceLimitRecord { Resource = r, Name = Names[r], Soft = row.Soft, Hard = row.Hard })
            .ToList();
    }
}
