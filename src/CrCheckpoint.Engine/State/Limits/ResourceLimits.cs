using CrCheckpoint.Engine.Native;

namespace CrCheckpoint.Engine.State.Limits;

/// <summary>Resource limits: prlimit64 reads and sets another process's limits directly, no remote call.</summary>
public static class ResourceLimits
{
    public static readonly string[] Names =
    [
        "CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC", "NOFILE", "MEMLOCK", "AS", "LOCKS",
        "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME",
    ];

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

    /// <summary>
    /// Sets each limit with prlimit64 from the engine. A hard limit above the current one needs
    /// CAP_SYS_RESOURCE; without it the hard limit stays and the soft one is clamped, and the log says so.
    /// </summary>
    public static unsafe void Restore(int pid, IEnumerable<ResourceLimitRecord> limits, MessageLog log)
    {
        foreach (var l in limits)
        {
            RLimit current;
            if (Interop.prlimit(pid, l.Resource, null, &current) == -1) continue;
            if (current.Current == l.Soft && current.Max == l.Hard) continue;
            var wanted = new RLimit { Current = l.Soft, Max = l.Hard };
            if (Interop.prlimit(pid, l.Resource, &wanted, null) == 0) continue;
            var clamped = new RLimit { Current = Math.Min(l.Soft, current.Max), Max = Math.Min(l.Hard, current.Max) };
            Interop.prlimit(pid, l.Resource, &clamped, null);
            log.Add($"RLIMIT_{l.Name} could not be raised to {l.Soft}/{l.Hard} (no CAP_SYS_RESOURCE); set to {clamped.Current}/{clamped.Max}");
        }
    }
}
