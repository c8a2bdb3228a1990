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
                throw new NativeException($"prlimit({pid}, RLIMIT_{Names[r]})", ErrnoCheck.LastErrno);
            limits.Add(new ResourceLimitRecord { Resource = r, Name = Names[r], Soft = old.Current, Hard = old.Max });
        }
        return limits;
    }
}
