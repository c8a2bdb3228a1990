using System.Diagnostics;
using CrCheckpoint.Engine.Checkpoint;
using CrCheckpoint.Engine.Format;
using CrCheckpoint.Engine.Image;
using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Proc;
using CrCheckpoint.Engine.State.Credentials;
using CrCheckpoint.Engine.State.Files;
using CrCheckpoint.Engine.State.Limits;
using CrCheckpoint.Engine.State.Memory;
using CrCheckpoint.Engine.State.Process;
using CrCheckpoint.Engine.State.Security;
using CrCheckpoint.Engine.State.Signals;
using CrCheckpoint.Engine.State.Threads;
using CrCheckpoint.Engine.State.Timers;
using CrCheckpoint.Engine.Tracing;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.Restart;

/// <summary>
/// Sequences a restart: read and check the context, create an empty traced process (with the
/// original pid), rebuild its address space, descriptors and the rest of its state kind by kind,
/// set its registers and let it go. A failure at any point kills what was built.
/// </summary>
public static class Restarter
{
    public static RestartResult Run(RestartRequest request)
    {
        var log = new MessageLog(request.Progress);
        var clock = Stopwatch.StartNew();
        try
        {
            var image = Load(request.Path);
            log.Add($"read {request.Path}: {image.Processes.Count} process(es), format {image.FormatVersion}.{image.FormatMinorVersion}");
            var order = ProcessTree.CreationOrder(image);
            request = StopState.SessionFor(request, order, log);
            var relocate = new PathRelocator(request.Relocate);
            foreach (var process in order.Where(p => !p.Process.Zombie))
            {
                MemoryRestore.CheckFiles(process, relocate);
                FileRestore.CheckFiles(process, relocate, order.Select(p => p.Pid).ToHashSet());
            }
            var kernel = File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
            if (kernel != image.Image.KernelRelease)
                log.Add($"the checkpoint was taken on kernel {image.Image.KernelRelease}, this is {kernel}");
            // The process ids only: a killed process's threads are gone once it is reaped, and a thread
            // id that another process holds is refused by clone3 itself, with the same message.
            if (request.RestorePid)
                foreach (var p in order)
                    ProcessCreator.WaitForFreePid(p.Pid, request.PidWait);

            var verifier = DataVerifier.Start(image);
            var (pids, bytes) = TracerThread.Run(() => Rebuild(request, image, order, relocate, verifier, log));
            var roots = ProcessTree.Roots(order).Select(p => pids[p.Pid]);
            var restarted = roots.Select(pid => new ChildWatcher(pid)).ToList();
            log.Add($"{string.Join(", ", order.Select(p => $"{pids[p.Pid]} ({p.Name})"))} running again");
            return new RestartResult
            {
                Path = request.Path,
                ProcessIds = order.Select(p => pids[p.Pid]).ToArray(),
                OriginalProcessIds = order.Select(p => p.Pid).ToArray(),
                Duration = clock.Elapsed,
                MemoryBytes = bytes,
                Messages = log.Messages,
                Processes = restarted,
            };
        }
        catch (RestartException e) when (e.Messages.Count == 0)
        {
            throw new RestartException(e.Failure, e.Message, e.Target, e.InnerException) { Messages = log.Messages };
        }
        catch (Exception e) when (e is not RestartException)
        {
            throw new RestartException(e switch
            {
                UnauthorizedAccessException => RestartFailure.PermissionDenied,
                NativeException { Errno: Errno.EPERM or Errno.EACCES } => RestartFailure.PermissionDenied,
                ContextFormatException => RestartFailure.ContextInvalid,
                _ => RestartFailure.Failed,
            }, $"restart from {request.Path} failed: {e.Message}. Nothing was left running.", request.Path, e) { Messages = log.Messages };
        }
    }

    private static ContextImage Load(string path)
    {
        try
        {
            return ContextImage.Load(path, verify: false);
        }
        catch (FileNotFoundException)
        {
            throw new RestartException(RestartFailure.ContextNotFound, $"there is no context file {path}.", path);
        }
        catch (ContextFormatException e)
        {
            throw new RestartException(RestartFailure.ContextInvalid, e.Message, path, e);
        }
    }

    private sealed class Rebuilt(ProcessImage image, Tracee leader)
    {
        public ProcessImage Image { get; } = image;
        public Tracee Leader { get; } = leader;
        /// <summary>Every thread, the leader first; filled once the threads are created.</summary>
        public List<(Tracee Tracee, ThreadRecord Record)> Threads { get; } = [];
    }

    /// <summary>What a restart has built so far: what to kill if a later step fails.</summary>
    private sealed class Building
    {
        public Dictionary<int, Rebuilt> Processes { get; } = [];
        public List<Tracee> Tracees { get; } = [];
        public List<string> CreatedCgroups { get; } = [];
        public Dictionary<int, Tracee> Leaders => Processes.ToDictionary(r => r.Key, r => r.Value.Leader);
    }

    private static (Dictionary<int, int> Pids, long Bytes) Rebuild(RestartRequest request, ContextImage image, List<ProcessImage> order,
        PathRelocator relocate, DataVerifier verifier, MessageLog log)
    {
        using var shared = SharedMemoryObjects.Create(image);
        using var files = new OpenFileTable(image, relocate,
            new StandardStreams(request.StandardInput, request.StandardOutput, request.StandardError), shared, log);
        var built = new Building();
        var live = order.Where(p => !p.Process.Zombie).ToList();
        try
        {
            CreateProcesses(request, image, order, built, log);
            files.Pids = order.ToDictionary(p => p.Pid, p => built.Processes[p.Pid].Leader.Pid);
            ProcessTree.RestoreGroups(request, order, built.Leaders);

            long bytes = 0;
            foreach (var p in live)
            {
                bytes += RebuildProcess(request, image, p, built.Processes[p.Pid].Leader, relocate, shared, files, log);
                RestoreThreads(request, image, p, built, log);
            }
            if (order.Sum(p => p.Threads.Count) > order.Count) log.Add($"created {order.Sum(p => Math.Max(0, p.Threads.Count - 1))} more thread(s)");

            verifier.Complete();
            files.Connections.Release();
            var checkClock = Stopwatch.StartNew();
            foreach (var p in live) CheckRestored(image, p, built.Processes[p.Pid], files);
            files.RemoveDeleted();
            log.Add($"checked what was restored against the context: {checkClock.Elapsed.TotalMilliseconds:F1} ms");

            foreach (var gone in ProcessTree.ExitZombies(order, built.Leaders)) built.Tracees.Remove(gone);
            Release(request, live.Select(p => built.Processes[p.Pid]).ToList(), log);
            return (order.ToDictionary(p => p.Pid, p => built.Processes[p.Pid].Leader.Pid), bytes);
        }
        catch
        {
            verifier.Cancel();
            KillHalfBuilt(built, log);
            throw;
        }
    }

    /// <summary>
    /// Every process, as an empty copy of the stub, parents first: a child is forked by its own parent,
    /// and a session leader calls setsid before it has children, so they inherit it; so do the cgroup
    /// and the per-process controls set here.
    /// </summary>
    private static void CreateProcesses(RestartRequest request, ContextImage image, List<ProcessImage> order, Building built, MessageLog log)
    {
        foreach (var p in order)
        {
            var wantPid = request.RestorePid ? p.Pid : (int?)null;
            Tracee tracee;
            if (built.Processes.TryGetValue(p.Process.ParentPid, out var parent))
            {
                tracee = ProcessCreator.CreateChild(parent.Leader, wantPid);
                built.Tracees.Add(tracee);
            }
            else
            {
                tracee = ProcessCreator.Create(wantPid, log);
                // On the kill list before anything else can throw: it holds the pid it was made for.
                built.Tracees.Add(tracee);
                // Clear of every saved area: the children it forks keep its scratch page.
                tracee.PrepareForRebuild(image.Processes.SelectMany(q => q.Map.Areas).Select(a => (a.Start, a.End)));
            }
            built.Processes[p.Pid] = new Rebuilt(p, tracee);
            ProcessTree.MakeSession(tracee, p, isRoot: parent is null, request.RestoreSid);
            CgroupMembership.Restore(tracee.Pid, p.Process, built.CreatedCgroups, log);
            ProcessControls.Restore(tracee, p.Process, log);
        }
    }

    /// <summary>
    /// A rebuilt process's other threads, then what is set per thread or must come after every thread
    /// exists: POSIX timers that signal a thread, credentials (last of what needs root), scheduling,
    /// cached thread ids, signal dispositions and pending signals.
    /// </summary>
    private static void RestoreThreads(RestartRequest request, ContextImage image, ProcessImage p, Building built, MessageLog log)
    {
        var r = built.Processes[p.Pid];
        if (p.Threads.Count != p.Process.ThreadIds.Length || p.Threads[0].Tid != p.Pid)
            throw new RestartException(RestartFailure.ContextInvalid,
                $"process {p.Pid} in {image.Path} has {p.Threads.Count} thread records for its {p.Process.ThreadIds.Length} threads.", image.Path);
        var threads = ThreadRestore.CreateThreads(r.Leader, p, request.RestorePid, log);
        built.Tracees.AddRange(threads);
        r.Threads.Add((r.Leader, p.Threads[0]));
        r.Threads.AddRange(threads.Zip(p.Threads.Skip(1)));
        PosixTimerState.Restore(r.Leader, p.Process.PosixTimers,
            tid => r.Threads.FirstOrDefault(x => x.Record.Tid == tid).Tracee?.Tid ?? r.Leader.Tid);
        CredentialsState.Restore(r.Threads, p.Process,
            ProcessControls.AfterCredentials(p.Process, p.Threads, built.Processes.ContainsKey(p.Process.ParentPid), log), log);
        Scheduling.Restore(r.Leader.Pid, r.Threads);
        if (threads.Count > 0) log.Add($"process {r.Leader.Pid}: {threads.Count} more thread(s) created");
        if (!request.RestorePid)
            foreach (var (t, record) in r.Threads) ThreadRestore.FixCachedThreadId(t, record);
        // After every batch of calls: a batch ends on an int3, whose forced SIGTRAP would reset a SIGTRAP handler.
        SignalRestore.RestoreDispositions(r.Leader, p.Process.Signals);
        SignalRestore.RestorePending(r.Leader, p.Process.Signals.SharedPending, []);
        foreach (var (t, record) in r.Threads) SignalRestore.RestorePending(t, [], record.PendingSignals);
    }

    /// <summary>
    /// Registers, extended state, signal masks and sandboxes of every thread, then all go at once: the
    /// leader first, carrying the job-control stop or the after-action signal in its detach, so that
    /// the stop is pending before anything runs.
    /// </summary>
    private static void Release(RestartRequest request, List<Rebuilt> processes, MessageLog log)
    {
        var signal = AfterActionSignal.For(request.After, request.Signal);
        foreach (var r in processes)
        {
            foreach (var (t, record) in r.Threads)
            {
                t.SetExtendedState(record.FullExtendedState());
                var final = ThreadRestore.FinalRegisters(t, record);
                t.SetFinalState(final, record.BlockedSignals);
                if (record.Sandbox is { } sandbox) t.LastCalls = thread => SeccompState.Restore(thread, sandbox, final.Rsp, SeccompState.SharedFilters(r.Threads.Select(x => x.Record.Sandbox)), t == r.Leader);
            }
        }
        foreach (var r in processes)
        {
            var own = signal != 0 ? signal : StopState.SignalFor(r.Image.Process);
            // SIGKILL cannot ride on a detach: the process goes stopped, so that it runs not one
            // instruction, and is killed once it is ours no more, so that its parent sees the kill.
            StopState.Release(r.Leader, own == Signals.SIGKILL ? Signals.SIGSTOP : own);
            foreach (var (t, _) in r.Threads.Skip(1)) t.Release();
            if (own == Signals.SIGKILL) Interop.kill(r.Leader.Pid, Signals.SIGKILL);
        }
        if (signal != 0) log.Add($"sent {Signals.Name(signal)} to every process");
    }

    private static void KillHalfBuilt(Building built, MessageLog log)
    {
        foreach (var t in built.Tracees) Interop.kill(t.Pid, Signals.SIGKILL);
        foreach (var t in Enumerable.Reverse(built.Tracees)) t.KillAndReap();
        if (built.Tracees.Count > 0) log.Add($"killed the half-built process(es) {string.Join(", ", built.Tracees.Select(t => t.Tid).Distinct())}");
        CgroupMembership.RemoveCreated(built.CreatedCgroups, log);
    }

    /// <summary>Memory, descriptors and the rest of one process, rebuilt inside its stub copy.</summary>
    private static long RebuildProcess(RestartRequest request, ContextImage image, ProcessImage process, Tracee tracee,
        PathRelocator relocate, SharedMemoryObjects shared, OpenFileTable files, MessageLog log)
    {
        ThreadRestore.DropRseq(tracee);
        var current = ProcMaps.Read(tracee.Pid);
        var saved = process.Map.Areas;
        MemoryRestore.PlaceKernelMappings(tracee, current, saved);
        var keep = saved.Where(a => a.Kind is MemoryAreaKind.Vdso or MemoryAreaKind.Vvar or MemoryAreaKind.VvarVclock)
            .Select(a => (a.Start, a.End))
            .Append(tracee.ScratchArea);
        MemoryRestore.UnmapAllExcept(tracee, keep);
        // Before any area is mapped: the kernel refuses a new exe while the old exe file is
        // still mapped, and the stub's executable may be the very program being restarted.
        MemoryLayoutState.Restore(tracee, process.Process, relocate, log);

        int contextFd;
        using (var scratch = tracee.Scratch())
            contextFd = (int)tracee.CheckedSyscall("open of the context file", Syscalls.openat, AT_FDCWD,
                scratch.String(process.Source), O_RDONLY | O_CLOEXEC, 0);
        long bytes;
        using (var bridge = new DescriptorBridge(tracee, FileRestore.HighestDescriptor(process)))
            bytes = MemoryRestore.MapAreas(tracee, image, process, contextFd, relocate, shared, bridge);
        tracee.Syscall(Syscalls.close, contextFd);
        log.Add($"process {tracee.Pid}: {saved.Count} memory areas, {bytes} bytes of saved pages");

        FileRestore.Restore(tracee, process, files);
        ProcessAttributes.RestoreEnvironment(tracee, process.Process, relocate, files.DeletedDirectory);
        ResourceLimits.Restore(tracee.Pid, process.Process.Limits, log);
        IntervalTimers.Restore(tracee, process.Process.Timers);
        ProcessAttributes.RestoreMembarrier(tracee, process.Process);
        return bytes;
    }

    /// <summary>
    /// What was restored, read back from the kernel and compared with the context; a difference is a
    /// <see cref="RestartFailure.Mismatch"/>. One line per kind of state.
    /// </summary>
    private static void CheckRestored(ContextImage image, ProcessImage p, Rebuilt r, OpenFileTable files)
    {
        ProcessAttributes.Verify(r.Leader.Pid, p.Process);
        FileRestore.Verify(r.Leader.Pid, p, files);
        SocketOptionState.Verify(r.Leader.Pid, p.Files);
        CredentialsState.Verify(r.Leader.Pid, r.Threads, p.Process);
        ProcessControls.Verify(r.Leader.Pid, p.Process);
        Scheduling.Verify(r.Leader.Pid, r.Threads);
        AreaFlagsState.Verify(r.Leader.Pid, p.Map);
        SharedMemoryObjects.VerifyDescriptors(r.Leader.Pid, p, image);
        CgroupMembership.Verify(r.Leader.Pid, r.Threads, p.Process);
        PidFdState.Verify(r.Leader.Pid, p.Files, files.RestartedPid);
    }
}
