using CrCheckpoint.Engine.Proc;

namespace CrCheckpoint.Engine.Checkpoint;

/// <summary>Turns a request's ID and scope into the processes to checkpoint, refusing what cannot be taken.</summary>
public static class ProcessSelection
{
    public static List<int> Resolve(CheckpointRequest request, MessageLog log)
    {
        var id = request.Id;
        List<int> pids;
        switch (request.Scope)
        {
            case CheckpointScope.Process:
                RequireProcess(id);
                pids = [id];
                break;
            case CheckpointScope.Tree:
                RequireProcess(id);
                pids = [id, .. Descendants(id)];
                break;
            default:
                pids = Members(request.Scope, id);
                if (pids.Count == 0)
                    throw new CheckpointException(CheckpointFailure.ProcessNotFound,
                        $"no process is in {(request.Scope == CheckpointScope.Group ? "process group" : "session")} {id}.", id);
                break;
        }

        var kept = new List<int>();
        var skipped = new HashSet<int>();
        Dictionary<int, List<int>>? tracers = null;
        foreach (var pid in pids)
        {
            // A process skipped by a ptrace policy takes its descendants out with it (the man page's --tree rule).
            if (request.Scope == CheckpointScope.Tree && pid != id && ParentOf(pid) is { } parent && skipped.Contains(parent))
            {
                skipped.Add(pid);
                continue;
            }
            if (pid != id && IsZombie(pid))
            {
                kept.Add(pid);
                continue;
            }
            try
            {
                if (Admit(pid, request, log, ref tracers)) kept.Add(pid);
                else skipped.Add(pid);
            }
            catch (CheckpointException e) when (pid != id && e.Failure == CheckpointFailure.ProcessNotFound)
            {
                // A descendant that ended (and was reaped) since the tree was listed is simply not part of it.
                log.Add($"process {pid} ended before the checkpoint; it is not part of it");
            }
        }
        if (kept.Count == 0)
            throw new CheckpointException(CheckpointFailure.NothingToCheckpoint,
                $"nothing to checkpoint: every process in scope of {id} was skipped by the ptrace policy.", id);
        return kept;
    }

    /// <summary>
    /// True when the .NET runtime started this child (System.Diagnostics.Process) and so reaps it on
    /// SIGCHLD: its waitpid would take the ptrace stops meant for the engine. Children the runtime
    /// does not know (orphans adopted by a subreaper, processes restarted here) are safe. The
    /// runtime keeps them in a private table; if that cannot be read, every other child counts.
    /// </summary>
    private static bool DotNetWaitsFor(int pid)
    {
        try
        {
            var type = typeof(System.Diagnostics.Process).Assembly.GetType("System.Diagnostics.ProcessWaitState");
            var field = type?.GetField("s_childProcessWaitStates", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static);
            if (field?.GetValue(null) is System.Collections.IDictionary table)
                lock (table) return table.Contains(pid);
        }
        catch (Exception e) when (e is System.Reflection.TargetException or InvalidOperationException or MemberAccessException)
        {
        }
        return true;
    }

    /// <summary>False when /proc refuses this user the process's details (another user's process, no CAP_SYS_PTRACE).</summary>
    private static unsafe bool CanInspect(int pid)
    {
        var buffer = stackalloc byte[16];
        if (Native.Interop.readlink($"/proc/{pid}/exe", buffer, 16) >= 0) return true;
        return Native.ErrnoCheck.LastErrno is not ((int)Native.Errno.EACCES or (int)Native.Errno.EPERM);
    }

    /// <summary>Every descendant, parents before children.</summary>
    public static List<int> Descendants(int root)
    {
        var result = new List<int>();
        var queue = new Queue<int>([root]);
        while (queue.Count > 0)
        {
            List<int> children;
            try { children = ProcTasks.Children(queue.Dequeue()); }
            catch (IOException) { continue; }
            foreach (var child in children.Where(c => !result.Contains(c)))
            {
                result.Add(child);
                queue.Enqueue(child);
            }
        }
        return result;
    }

    /// <summary>A zombie waiting for its parent; a process being reaped right now ('X') is as good as gone.</summary>
    public static bool IsZombie(int pid)
    {
        try { return ProcStat.Read(pid).State is 'Z'; }
        catch (IOException) { return false; }
    }

    private static int? ParentOf(int pid)
    {
        try { return ProcStat.Read(pid).ParentId; }
        catch (IOException) { return null; }
    }

    private static void RequireProcess(int pid)
    {
        if (pid <= 0 || !ProcTasks.Exists(pid))
            throw new CheckpointException(CheckpointFailure.ProcessNotFound, $"there is no process {pid}.", pid);
    }

    private static List<int> Members(CheckpointScope scope, int id)
    {
        var members = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            try
            {
                var stat = ProcStat.Read(pid);
                if (stat.IsKernelThread) continue;
                if ((scope == CheckpointScope.Group ? stat.ProcessGroupId : stat.SessionId) == id) members.Add(pid);
            }
            catch (IOException) { }
        }
        members.Sort();
        return members;
    }

    /// <summary>False when a ptrace policy says to skip the process; throws when it cannot be taken.</summary>
    private static bool Admit(int pid, CheckpointRequest request, MessageLog log, ref Dictionary<int, List<int>>? tracers)
    {
        ProcStat stat;
        ProcStatus status;
        try
        {
            stat = ProcStat.Read(pid);
            status = ProcStatus.Read(pid);
        }
        catch (IOException)
        {
            throw new CheckpointException(CheckpointFailure.ProcessNotFound, $"there is no process {pid}.", pid);
        }

        if (pid == Environment.ProcessId)
            throw new CheckpointException(CheckpointFailure.Unsupported,
                $"process {pid} is the PowerShell process running this command; it cannot checkpoint itself. Run the checkpoint from another pwsh.", pid);
        if (stat.ParentId == Environment.ProcessId && !Restart.ChildWatcher.IsWatched(pid) && DotNetWaitsFor(pid))
            throw new CheckpointException(CheckpointFailure.Unsupported,
                $"process {pid} ({stat.Comm}) is a child of this PowerShell process (started with Start-Process, & or a job). The .NET runtime waits for its own children and would take the kernel's notifications away from the checkpoint. Start the program detached (for example through setsid or nohup from bash), or checkpoint it from another PowerShell process.", pid);
        if (stat.IsKernelThread)
            throw new CheckpointException(CheckpointFailure.Unsupported,
                $"process {pid} ({stat.Comm}) is a kernel thread; only user processes can be checkpointed.", pid);
        if (stat.State is 'Z' or 'X')
            throw new CheckpointException(CheckpointFailure.Unsupported,
                $"process {pid} ({stat.Comm}) has exited and is waiting to be reaped (a zombie); there is nothing to checkpoint.", pid);
        if (!CanInspect(pid))
            throw new CheckpointException(CheckpointFailure.PermissionDenied,
                $"cannot read process {pid} ({stat.Comm}): it belongs to another user and this session lacks the privilege (run as its owner or as root).", pid);

        var tracer = status.TracerPid;
        if (tracer != 0)
        {
            switch (request.Ptraced)
            {
                case PtracedPolicy.Skip:
                    log.Add($"skipped process {pid} ({stat.Comm}): it is being traced by process {tracer} (-Ptraced Skip)");
                    return false;
                case PtracedPolicy.Error:
                    throw new CheckpointException(CheckpointFailure.Unsupported,
                        $"process {pid} ({stat.Comm}) is being traced by process {tracer} (a debugger or tracer). Detach it first, or use -Ptraced Skip.", pid);
                case PtracedPolicy.Allow:
                    throw new CheckpointException(CheckpointFailure.Unsupported,
                        $"process {pid} ({stat.Comm}) is being traced by process {tracer}; the kernel allows one tracer per process, so it cannot be checkpointed until that tracer detaches (-Ptraced Allow cannot override this).", pid);
            }
        }

        var tracees = (tracers ??= TracerTable()).GetValueOrDefault(pid) ?? [];
        if (tracees.Count > 0)
        {
            if (request.Ptracer == PtracerPolicy.Skip)
            {
                log.Add($"skipped process {pid} ({stat.Comm}): it traces {string.Join(", ", tracees)} (-Ptracer Skip)");
                return false;
            }
            throw new CheckpointException(CheckpointFailure.Unsupported,
                $"process {pid} ({stat.Comm}) is tracing process {string.Join(", ", tracees)}; a tracer cannot be checkpointed. Use -Ptracer Skip to leave it out.", pid);
        }

        return true;
    }

    /// <summary>
    /// Who traces whom, from one pass over /proc/*/status (a checkpoint of many processes asks once,
    /// not once per process). TracerPid names the tracing thread; its process is its Tgid.
    /// </summary>
    private static Dictionary<int, List<int>> TracerTable()
    {
        var table = new Dictionary<int, List<int>>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            try
            {
                var tracer = ProcStatus.Read(pid).TracerPid;
                if (tracer == 0) continue;
                var tracerProcess = int.TryParse(ProcStatus.Read(tracer)["Tgid"], out var tgid) ? tgid : tracer;
                if (!table.TryGetValue(tracerProcess, out var list)) table[tracerProcess] = list = [];
                list.Add(pid);
            }
            catch (IOException) { }
        }
        return table;
    }
}
