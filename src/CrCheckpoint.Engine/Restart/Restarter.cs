using System.Diagnostics;
using CrCheckpoint.Engine.Checkpoint;
using CrCheckpoint.Engine.Format;
using CrCheckpoint.Engine.Image;
using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Proc;
using CrCheckpoint.Engine.State.Files;
using CrCheckpoint.Engine.State.Limits;
using CrCheckpoint.Engine.State.Memory;
using CrCheckpoint.Engine.State.Process;
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
            var process = CheckSupported(image);
            var relocate = new PathRelocator(request.Relocate);
            MemoryRestore.CheckFiles(process, relocate);
            FileRestore.CheckFiles(process, relocate);
            var kernel = File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
            if (kernel != image.Image.KernelRelease)
                log.Add($"the checkpoint was taken on kernel {image.Image.KernelRelease}, this is {kernel}");
            if (request.RestorePid)
                foreach (var tid in process.Threads.Select(t => t.Tid)) ProcessCreator.WaitForFreePid(tid, request.PidWait);

            var verifier = DataVerifier.Start(request.Path, image.Processes);
            var (pid, bytes) = TracerThread.Run(() => Rebuild(request, image, process, relocate, verifier, log));
            var restarted = new RestartedProcess(pid);
            log.Add($"process {pid} ({process.Name}) running again");
            return new RestartResult
            {
                Path = request.Path,
                ProcessIds = [pid],
                OriginalProcessIds = [process.Pid],
                Duration = clock.Elapsed,
                MemoryBytes = bytes,
                Messages = log.Messages,
                Processes = [restarted],
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

    private static ProcessImage CheckSupported(ContextImage image)
    {
        if (image.Processes.Count != 1)
            throw new RestartException(RestartFailure.Unsupported,
                $"{image.Path} holds {image.Processes.Count} processes; restarting process trees is not supported yet.", image.Path);
        var process = image.Processes[0];
        if (process.Threads.Count == 0 || process.Threads[0].Tid != process.Pid)
            throw new RestartException(RestartFailure.ContextInvalid,
                $"process {process.Pid} in {image.Path} has no record of its main thread.", image.Path);
        return process;
    }

    private static (int Pid, long Bytes) Rebuild(RestartRequest request, ContextImage image, ProcessImage process,
        PathRelocator relocate, DataVerifier verifier, MessageLog log)
    {
        using var shared = SharedMemoryObjects.Create(request.Path, process);
        var tracee = ProcessCreator.Create(request.RestorePid ? process.Pid : null, log);
        var threads = new List<(Tracee Tracee, ThreadRecord Record)>();
        try
        {
            var pid = tracee.Pid;
            var thread = process.Threads[0];
            threads.Add((tracee, thread));
            ThreadRestore.DropRseq(tracee);

            var current = ProcMaps.Read(pid);
            var saved = process.Map.Areas;
            var used = current.Select(a => (a.Start, a.End)).Concat(saved.Select(a => (a.Start, a.End)));
            tracee.MapScratchAt(AddressSpace.FindFree(used, Tracee.ScratchSize));
            MemoryRestore.PlaceKernelMappings(tracee, current, saved);
            var keep = saved.Where(a => a.Kind is MemoryAreaKind.Vdso or MemoryAreaKind.Vvar or MemoryAreaKind.VvarVclock)
                .Select(a => (a.Start, a.End))
                .Append((tracee.Scratch, tracee.Scratch + Tracee.ScratchSize));
            MemoryRestore.UnmapAllExcept(tracee, keep);
            // Before any area is mapped: the kernel refuses a new exe while the old exe file is
            // still mapped, and the stub's executable may be the very program being restarted.
            ProcessRestore.RestoreMemoryLayout(tracee, process.Process, relocate, log);

            var contextFd = (int)tracee.CheckedSyscall("open of the context file", Syscalls.openat, AT_FDCWD,
                tracee.ScratchString(request.Path), O_RDONLY | O_CLOEXEC, 0);
            long bytes;
            using (var bridge = new DescriptorBridge(tracee, FileRestore.HighestDescriptor(process)))
                bytes = MemoryRestore.MapAreas(tracee, process, contextFd, relocate, shared, bridge);
            tracee.Syscall(Syscalls.close, contextFd);
            log.Add($"rebuilt {saved.Count} memory areas, {bytes} bytes of saved pages");

            FileRestore.Restore(tracee, process, new ContextFiles(request.Path, process), relocate,
                new StandardStreams(request.StandardInput, request.StandardOutput, request.StandardError), shared, log);
            ProcessRestore.RestoreEnvironment(tracee, process.Process, relocate, log);
            ResourceLimitRestore.Restore(pid, process.Process.Limits, log);
            SignalRestore.RestoreDispositions(tracee, process.Process.Signals);
            IntervalTimerRestore.Restore(tracee, process.Process.Timers);
            RestoreGroupAndSession(tracee, request, process, log);
            foreach (var other in process.Threads.Skip(1))
                threads.Add((ProcessCreator.CreateThread(tracee, request.RestorePid ? other.Tid : null), other));
            if (threads.Count > 1) log.Add($"created {threads.Count - 1} more thread(s)");
            foreach (var (t, record) in threads)
            {
                ThreadRestore.RestoreKernelState(t, record);
                if (t != tracee) ThreadRestore.RestoreName(t, record);
                if (!request.RestorePid) ThreadRestore.FixCachedThreadId(t, record);
            }
            SignalRestore.RestorePending(tracee, process.Process.Signals.SharedPending, []);
            foreach (var (t, record) in threads) SignalRestore.RestorePending(t, [], record.PendingSignals);
            ProcessRestore.RestoreCredentials(tracee, process.Process, log);

            verifier.Complete();
            foreach (var (t, record) in threads)
            {
                t.SetExtendedState(record.ExtendedState);
                t.SetFinalState(ThreadRestore.FinalRegisters(t, record), record.BlockedSignals);
            }

            var signal = AfterActionSignal.For(request.After, request.Signal);
            if (signal == 0 && process.Process.WasStopped) signal = Signals.SIGSTOP;
            if (signal != 0) tracee.SendSignal(signal);
            // The leader last: it unmaps the scratch page the other threads borrowed.
            foreach (var (t, _) in threads.Skip(1)) t.Release();
            tracee.Release();
            if (signal != 0) log.Add($"sent {Signals.Name(signal)} to {pid}");
            return (pid, bytes);
        }
        catch
        {
            Interop.kill(tracee.Pid, Signals.SIGKILL);
            foreach (var (t, _) in threads.Skip(1)) t.KillAndReap();
            tracee.KillAndReap();
            log.Add($"killed the half-built process {tracee.Pid}");
            throw;
        }
    }

    private static void RestoreGroupAndSession(Tracee tracee, RestartRequest request, ProcessImage process, MessageLog log)
    {
        var original = process.Process;
        if (request.RestoreSid)
        {
            if (original.SessionId != original.Pid)
                throw new RestartException(RestartFailure.Unsupported,
                    $"process {original.Pid} was in session {original.SessionId}, led by another process; only a session leader's session can be restored (leave out -RestoreSid).");
            tracee.CheckedSyscall("setsid", Syscalls.setsid);
            log.Add($"process {tracee.Pid} leads a new session, as it did");
        }
        if (request.RestorePgid)
        {
            var group = original.ProcessGroupId == original.Pid ? 0 : original.ProcessGroupId;
            if (group == 0 && request.RestoreSid) return; // setsid made it the leader of its own group already
            var r = tracee.Syscall(Syscalls.setpgid, 0, group);
            if (r < 0)
                throw new RestartException(RestartFailure.Unsupported,
                    $"cannot put process {tracee.Pid} back into process group {original.ProcessGroupId}: {Marshal.GetPInvokeErrorMessage((int)-r)} (the group must exist in the caller's session).");
        }
    }
}
