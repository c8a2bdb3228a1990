using CrCheckpoint.Engine.Image;
using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Proc;
using CrCheckpoint.Engine.Restart;
using CrCheckpoint.Engine.Tracing;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Process;

/// <summary>
/// How the processes of a checkpoint hang together: parents and children, process groups,
/// sessions and zombies. At restart the tree is rebuilt in an order that lets each relation be
/// made the way the kernel makes it: a child is forked by its own parent, a session leader calls
/// setsid before it has children, a group leader exists before its members join, and a zombie
/// exits only once its parent is there to reap it.
/// </summary>
public static class ProcessTree
{
    /// <summary>A zombie of the checkpoint: only its place in the tree and its exit status are left to save.</summary>
    public static ProcessRecord Zombie(int pid)
    {
        var stat = ProcStat.Read(pid);
        return new ProcessRecord
        {
            Pid = pid, ParentPid = stat.ParentId, ProcessGroupId = stat.ProcessGroupId, SessionId = stat.SessionId,
            Name = stat.Comm, StateAtCheckpoint = "Z", Zombie = true, ExitStatus = stat.ExitCode,
        };
    }

    /// <summary>Parents before their children; a process whose parent is not in the file is a root.</summary>
    public static List<ProcessImage> CreationOrder(ContextImage image)
    {
        if (image.Processes.Count == 0)
            throw new RestartException(RestartFailure.ContextInvalid, $"{image.Path} holds no process.", image.Path);
        foreach (var p in image.Processes.Where(p => !p.Process.Zombie))
            if (p.Process.ThreadIds.Length == 0 || p.Process.ThreadIds[0] != p.Pid)
                throw new RestartException(RestartFailure.ContextInvalid,
                    $"process {p.Pid} in {image.Path} has no record of its main thread.", image.Path);
        var order = new List<ProcessImage>();
        var pending = new List<ProcessImage>(image.Processes);
        while (pending.Count > 0)
        {
            var ready = pending.Where(p => !pending.Any(q => q.Pid == p.Process.ParentPid) || order.Any(q => q.Pid == p.Process.ParentPid)).ToList();
            if (ready.Count == 0) ready = [pending[0]];
            foreach (var p in ready.Where(p => order.Any(q => q.Pid == p.Process.ParentPid) || !pending.Any(q => q.Pid == p.Process.ParentPid)))
            {
                order.Add(p);
                pending.Remove(p);
            }
        }
        if (order.Any(p => p.Process.Zombie && !order.Any(q => q.Pid == p.Process.ParentPid)))
            throw new RestartException(RestartFailure.Unsupported,
                $"{image.Path} holds a zombie without its parent; it has nobody to be reaped by.", image.Path);
        return order;
    }

    /// <summary>The processes whose parent is not part of the checkpoint: the restart becomes their parent.</summary>
    public static IEnumerable<ProcessImage> Roots(IReadOnlyList<ProcessImage> order) =>
        order.Where(p => !order.Any(q => q.Pid == p.Process.ParentPid));

    /// <summary>
    /// A session leader makes its session before it has children, so that they are born in it; a
    /// root does so only with -RestoreSid (otherwise it joins the caller's session, as with cr_restart).
    /// </summary>
    public static void MakeSession(Tracee tracee, ProcessImage p, bool isRoot, bool restoreSid)
    {
        if (p.Process.SessionId == p.Pid && (!isRoot || restoreSid))
            tracee.CheckedSyscall("setsid", Syscalls.setsid);
    }

    /// <summary>
    /// Groups led by a process of the checkpoint come back (leaders first). The root joins the
    /// caller's group and session, as with cr_restart, unless -RestorePgid/-RestoreSid, or unless
    /// other processes of the checkpoint were in the group it led.
    /// </summary>
    /// <param name="leaders">Each process's main thread after the restart, by its pid in the context.</param>
    public static void RestoreGroups(RestartRequest request, List<ProcessImage> order, IReadOnlyDictionary<int, Tracee> leaders)
    {
        var root = order[0];
        if (request.RestoreSid && root.Process.SessionId != root.Pid)
            throw new RestartException(RestartFailure.Unsupported,
                $"process {root.Pid} was in session {root.Process.SessionId}, led by a process outside the checkpoint; only a session whose leader is checkpointed can be restored (leave out -RestoreSid).");
        var rootLeads = root.Process.ProcessGroupId == root.Pid &&
            (request.RestorePgid || request.RestoreSid || order.Any(q => q != root && q.Process.ProcessGroupId == root.Pid));
        foreach (var p in order.OrderBy(p => p.Process.ProcessGroupId == p.Pid ? 0 : 1))
        {
            var isRoot = p == root;
            if (p.Process.SessionId == p.Pid && (!isRoot || request.RestoreSid)) continue; // setsid made it its group's leader
            var pgid = p.Process.ProcessGroupId;
            int? target = pgid == p.Pid ? (isRoot && !rootLeads ? null : 0)
                : leaders.TryGetValue(pgid, out var leader) ? leader.Pid
                : isRoot && request.RestorePgid ? pgid
                : null;
            if (target is null) continue;
            var tracee = leaders[p.Pid];
            var r = tracee.Syscall(Syscalls.setpgid, 0, target.Value);
            if (r < 0)
                throw new RestartException(RestartFailure.Unsupported,
                    $"cannot put process {tracee.Pid} back into process group {pgid}: {Marshal.GetPInvokeErrorMessage((int)-r)} (the group must exist in the caller's session).");
        }
    }

    /// <summary>
    /// Zombies exit with their saved status, children before parents, so that each waits for its
    /// own parent to reap it. Returns the tracees that are gone now.
    /// </summary>
    public static List<Tracee> ExitZombies(List<ProcessImage> order, IReadOnlyDictionary<int, Tracee> leaders)
    {
        var gone = new List<Tracee>();
        foreach (var p in order.Where(p => p.Process.Zombie).Reverse())
        {
            BecomeZombie(leaders[p.Pid], p.Process.ExitStatus);
            gone.Add(leaders[p.Pid]);
        }
        return gone;
    }

    /// <summary>
    /// Ends a recreated process the way the zombie it stands for ended: exit code or signal. Its
    /// exit is reported to us first (we trace it); once we have seen it, it waits as a zombie for
    /// its restored parent to reap it.
    /// </summary>
    private static unsafe void BecomeZombie(Tracee tracee, int waitStatus)
    {
        var signal = waitStatus & 0x7f;
        try
        {
            if (signal == 0)
            {
                tracee.Syscall(Syscalls.exit_group, (waitStatus >> 8) & 0xff);
                return;
            }
            var noCore = new RLimit();
            prlimit(tracee.Pid, 4 /* RLIMIT_CORE */, &noCore, null);
            tracee.DieOf(signal);
        }
        catch (TraceeGoneException)
        {
        }
    }
}
