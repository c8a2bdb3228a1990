using CrCheckpoint.Engine.Native;

namespace CrCheckpoint.Engine.State.Limits;

public static class ResourceLimitRestore
{
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
