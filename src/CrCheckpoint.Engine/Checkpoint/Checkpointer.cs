using System.Diagnostics;
using CrCheckpoint.Engine.Format;
using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Proc;
using CrCheckpoint.Engine.State;
using CrCheckpoint.Engine.State.Files;
using CrCheckpoint.Engine.State.Memory;
using CrCheckpoint.Engine.State.Process;
using CrCheckpoint.Engine.Tracing;

namespace CrCheckpoint.Engine.Checkpoint;

/// <summary>
/// Sequences a checkpoint: choose the processes, open the destination, freeze, capture each kind of
/// state, stream the records, commit the file, then run, stop or kill the processes as asked.
/// Any failure before the commit releases the processes exactly as they were and removes the
/// partial file; an existing context file is untouched unless --clobber was chosen.
/// </summary>
public static class Checkpointer
{
    public static string Version => typeof(Checkpointer).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";

    public static CheckpointResult Run(CheckpointRequest request)
    {
        var log = new MessageLog(request.Progress);
        try
        {
            return TracerThread.Run(() => RunTraced(request, log));
        }
        catch (CheckpointException e) when (e.Messages.Count == 0)
        {
            throw new CheckpointException(e.Failure, e.Message, e.Pid, e.InnerException) { Messages = log.Messages };
        }
        catch (Exception e) when (e is not CheckpointException)
        {
            throw Translate(e, request.Id, log);
        }
    }

    private static CheckpointException Translate(Exception e, int id, MessageLog log) => e switch
    {
        TraceeGoneException g => new CheckpointException(CheckpointFailure.ProcessExited,
            $"process {g.Tid} exited during the checkpoint; no context file was written.", g.Tid, e) { Messages = log.Messages },
        UnsupportedStateException u => new CheckpointException(CheckpointFailure.Unsupported,
            u.Message + ". No context file was written; the process was left running as before.", u.Pid, e) { Messages = log.Messages },
        UnauthorizedAccessException => new CheckpointException(CheckpointFailure.PermissionDenied, e.Message, id, e) { Messages = log.Messages },
        TimeoutException => new CheckpointException(CheckpointFailure.TimedOut,
            e.Message.Contains("left running") ? e.Message : $"{e.Message}; the processes were left as they were and no context file was written.", id, e) { Messages = log.Messages },
        IOException and not NativeException => new CheckpointException(CheckpointFailure.DestinationFailed,
            $"checkpoint of {id} failed: {e.Message}. The process was left running as before.", id, e) { Messages = log.Messages },
        _ => new CheckpointException(CheckpointFailure.Failed,
            $"checkpoint of {id} failed: {e.Message}. The process was left running as before.", id, e) { Messages = log.Messages },
    };

    private static CheckpointResult RunTraced(CheckpointRequest request, MessageLog log)
    {
        var clock = Stopwatch.StartNew();
        var deadline = request.Timeout is { } t ? clock.Elapsed + t : TimeSpan.MaxValue;
        // Every wait for a tracee is bounded by the same deadline, so that a process that cannot be frozen
        // (a vfork parent, a thread stuck in the kernel) costs -TimeoutSec, not a hang.
        Tracee.SetDeadline(request.Timeout, $"the checkpoint of {request.Id} (-TimeoutSec {request.Timeout?.TotalSeconds:0.###})");
        void CheckDeadline()
        {
            if (clock.Elapsed > deadline)
                throw new TimeoutException($"the checkpoint of {request.Id} took longer than {request.Timeout!.Value.TotalSeconds:0.###} s (-Timeout); the process was left running as before and no context file was written.");
        }

        if (request.Directory is not null && (request.Path is not null || request.Fd is not null))
            throw new CheckpointException(CheckpointFailure.InvalidRequest,
                "-Directory writes one context file per process; it cannot be combined with -Path or -Fd.");

        var pids = ProcessSelection.Resolve(request, log);
        var zombies = pids.Where(ProcessSelection.IsZombie).ToList();
        var live = pids.Except(zombies).ToList();
        var states = new Dictionary<int, char>();
        foreach (var p in live.ToList())
        {
            try { states[p] = ProcStat.Read(p).State; }
            catch (IOException) when (p != request.Id) { live.Remove(p); }
        }

        using var destination = request.Directory is not null ? null
            : request.Fd is { } fd ? ContextDestination.OpenDescriptor(fd)
            : ContextDestination.Open(request, ContextDestination.Resolve(request.WorkingDirectory, request.Path ?? $"context.{request.Id}"));
        using var directory = request.Directory is not null ? DirectoryDestination.Open(request) : null;
        CheckDeadline();

        using var streamer = new PageStreamer();
        // Declared before the processes are frozen, so that it is disposed after they are released.
        using var connections = new TcpRepairHold();
        var tracees = new List<FrozenProcess>();
        var frozen = Stopwatch.StartNew();
        var released = false;
        try
        {
            FreezeAll(request, live, states, tracees, zombies, log);
            // Every parent is frozen now, so a zombie still here stays; one reaped meanwhile is gone.
            foreach (var gone in zombies.Where(z => !ProcessSelection.IsZombie(z)).ToList())
            {
                zombies.Remove(gone);
                log.Add($"process {gone} was reaped as the checkpoint began; it is not part of it");
            }
            frozen.Restart();
            pids = tracees.Select(t => t.Pid).Concat(zombies).ToList();
            log.Add($"froze {string.Join(", ", tracees.Select(t => t.Pid))}{(zombies.Count > 0 ? $"; zombies {string.Join(", ", zombies)}" : "")}");

            var captured = tracees.Select(tr => ProcessCapture.Capture(tr, states[tr.Pid], request.Save, connections, request.AcceptLoss, log)).ToList();
            if (connections.Count > 0) log.Add($"{connections.Count} TCP connection(s) held in repair mode for the checkpoint");
            SharedFileTables.Refuse(captured.Select(c => c.Files).ToList());
            PidFdState.CheckTargets(captured.Select(c => c.Files), pids);
            SharedDescriptions.Assign(captured.Select(c => c.Files).ToList());
            var pipes = CapturePipes(captured);
            var sockets = CaptureSockets(captured);
            CheckDeadline();

            var image = new ImageRecord
            {
                ToolVersion = Version,
                CreatedUtc = DateTimeOffset.UtcNow,
                Hostname = Environment.MachineName,
                KernelRelease = File.ReadAllText("/proc/sys/kernel/osrelease").Trim(),
                Scope = request.Scope.ToString(),
                RequestedId = request.Id,
                ProcessIds = pids.ToArray(),
                SaveMappedFiles = request.Save.ToString(),
            };
            long memoryBytes = 0;
            if (directory is not null)
            {
                // One file per process, each complete on its own: its records, the files it needs, the pipes it reads.
                foreach (var p in captured)
                {
                    var reads = p.Files.Descriptors.Where(d => d.Kind is FileDescriptorKind.Pipe or FileDescriptorKind.Fifo && d.Readable).Select(d => d.Inode).ToHashSet();
                    var holds = p.Files.Descriptors.Where(d => d.Kind == FileDescriptorKind.Socket).Select(d => d.Inode).ToHashSet();
                    memoryBytes += WriteContext(directory.CreateFile($"context.{p.Process.Pid}"), true, image, [p], [],
                        pipes.Where(x => reads.Contains(x.Meta.Inode)).ToList(),
                        sockets.Where(x => holds.Contains(x.Meta.Inode)).ToList(), streamer, CheckDeadline, log);
                }
                foreach (var zombie in zombies)
                    WriteContext(directory.CreateFile($"context.{zombie}"), true, image, [], [zombie], [], [], streamer, CheckDeadline, log);
            }
            else
            {
                memoryBytes = WriteContext(destination!.Stream, destination.AlignData, image, captured, zombies, pipes, sockets, streamer, CheckDeadline, log);
                destination.Flush();
            }

            Tracee.SetDeadline(null);
            var frozenFor = Finish(request, () => Commit(request, destination, directory, log), tracees, connections, log, frozen);
            released = true;
            var bytes = directory is not null ? directory.Bytes : destination!.Stream.CanSeek ? destination.Stream.Length : 0;
            return new CheckpointResult
            {
                Path = directory?.FinalPath ?? destination!.FinalPath,
                ProcessIds = pids.ToArray(),
                Bytes = bytes,
                MemoryBytes = memoryBytes,
                Duration = clock.Elapsed,
                FrozenFor = frozenFor,
                After = request.After,
                Signal = SignalFor(request),
                BackupPath = directory is not null ? directory.BackupPath : destination!.BackupPath,
                Messages = log.Messages,
            };
        }
        finally
        {
            Tracee.SetDeadline(null);
            if (!released)
            {
                connections.Resume();
                foreach (var tracee in tracees) tracee.DetachQuietly();
                destination?.Abort();
                directory?.Abort();
                if (tracees.Count > 0) log.Add("released the processes unchanged after the failure");
            }
        }
    }

    /// <summary>
    /// Freezes every process in scope, parents first. For a tree, the descendants are listed again
    /// after each round until no new one appears: a child forked during the freeze is attached to
    /// us by PTRACE_O_TRACEFORK and is caught in the next round.
    /// </summary>
    private static void FreezeAll(CheckpointRequest request, List<int> live, Dictionary<int, char> states, List<FrozenProcess> frozen,
        List<int> zombies, MessageLog log)
    {
        const int options = Interop.PTRACE_O_TRACECLONE | Interop.PTRACE_O_TRACEFORK | Interop.PTRACE_O_TRACEVFORK;
        var pending = new List<int>(live);
        while (pending.Count > 0)
        {
            Tracee.CheckDeadline("freezing the processes (new ones kept being born)");
            foreach (var pid in pending)
            {
                try
                {
                    frozen.Add(FrozenProcess.Freeze(pid, options | State.Security.SeccompState.FreezeOptions(pid)));
                }
                catch (Exception e) when (pid != request.Id && e is TraceeGoneException or UnsupportedStateException && ProcessSelection.IsZombie(pid))
                {
                    // It exited while its parent was being frozen: its parent has not reaped it, so it is a zombie of the checkpoint.
                    zombies.Add(pid);
                }
                catch (TraceeGoneException) when (pid != request.Id)
                {
                    log.Add($"process {pid} exited as the checkpoint began; it is not part of it");
                }
            }
            if (request.Scope != CheckpointScope.Tree) break;
            var known = frozen.Select(f => f.Pid).Concat(zombies).ToHashSet();
            var fresh = ProcessSelection.Descendants(request.Id).Where(p => !known.Contains(p)).ToList();
            zombies.AddRange(fresh.Where(ProcessSelection.IsZombie));
            pending = fresh.Where(p => !zombies.Contains(p)).ToList();
            foreach (var p in pending) states[p] = 'R';
            if (pending.Count > 0) log.Add($"caught {string.Join(", ", pending)}, born during the freeze");
        }
    }

    /// <summary>The bytes in flight in every pipe that a process of the checkpoint reads from.</summary>
    private static List<(PipeDataRecord Meta, byte[] Data)> CapturePipes(List<CapturedProcess> captured)
    {
        var pipes = new List<(PipeDataRecord, byte[])>();
        var seen = new HashSet<ulong>();
        foreach (var p in captured)
        {
            foreach (var d in p.Files.Descriptors.Where(d => d.Kind is FileDescriptorKind.Pipe or FileDescriptorKind.Fifo && d.Readable))
            {
                if (!seen.Add(d.Inode)) continue;
                pipes.Add(PipeCapture.Capture(p.Process.Pid, d.Fd, d.Inode));
            }
        }
        return pipes;
    }

    /// <summary>Streams one context: the Image record, the processes, zombies and pipes given, the End record.</summary>
    private static long WriteContext(Stream stream, bool align, ImageRecord image, List<CapturedProcess> captured, List<int> zombies,
        List<(PipeDataRecord Meta, byte[] Data)> pipes, List<(SocketDataRecord Meta, byte[] Data)> sockets,
        PageStreamer streamer, Action checkDeadline, MessageLog log)
    {
        using var writer = new ContextWriter(stream, new ContextWriterOptions { AlignData = align, LeaveOpen = true });
        writer.WriteRecord(RecordKind.Image, image);
        var memoryBytes = WriteProcesses(writer, captured, streamer, checkDeadline);
        foreach (var zombie in zombies) writer.WriteRecord(RecordKind.Process, ProcessTree.Zombie(zombie));
        foreach (var (meta, data) in pipes)
        {
            var record = writer.BeginDataRecord(RecordKind.PipeData, meta, data.Length);
            record.Write(data);
            record.Complete();
        }
        foreach (var (meta, data) in sockets)
        {
            var record = writer.BeginDataRecord(RecordKind.SocketData, meta, data.Length);
            record.Write(data);
            record.Complete();
        }
        writer.Finish();
        log.Add($"wrote {writer.BytesWritten} bytes in {writer.RecordCount} records ({memoryBytes} bytes of memory)");
        return memoryBytes;
    }

    /// <summary>
    /// Both ends of every socket pair must be in the checkpoint; what waits in each end's receive
    /// queue is read without being taken.
    /// </summary>
    private static List<(SocketDataRecord Meta, byte[] Data)> CaptureSockets(List<CapturedProcess> captured)
    {
        var held = captured.SelectMany(p => p.Files.Descriptors.Where(d => d.Kind == FileDescriptorKind.Socket).Select(d => (p.Process.Pid, d))).ToList();
        var inodes = held.Select(h => h.d.Inode).ToHashSet();
        var result = new List<(SocketDataRecord, byte[])>();
        var seen = new HashSet<ulong>();
        foreach (var (pid, d) in held)
        {
            if (d.PeerInode != 0 && !inodes.Contains(d.PeerInode)) // 0: the other end was closed
                throw new UnsupportedStateException(pid,
                    $"descriptor {d.Fd} ({d.Path}) is a unix socket connected to a process outside the checkpoint; checkpoint that process too (-Scope Tree from a common ancestor, or -Scope Session)");
            if (seen.Add(d.Inode)) result.Add(SocketCapture.Capture(pid, d.Fd, d));
        }
        return result;
    }

    private static long WriteProcesses(ContextWriter writer, List<CapturedProcess> captured, PageStreamer streamer, Action checkDeadline)
    {
        var before = streamer.BytesCopied;
        var fileBuffer = new byte[1 << 20];
        var writtenFiles = new HashSet<string>();
        foreach (var p in captured)
        {
            writer.WriteRecord(RecordKind.Process, p.Process);
            foreach (var thread in p.Threads) writer.WriteRecord(RecordKind.Thread, thread);
            writer.WriteRecord(RecordKind.MemoryMap, p.Map);
            writer.WriteRecord(RecordKind.FileTable, p.Files);
            foreach (var file in p.FilesToSave.Where(f => writtenFiles.Add(f.Key))) FileContentWriter.Write(writer, file, fileBuffer);
            foreach (var plan in p.Plans.Where(pl => pl.Runs.Count > 0))
            {
                streamer.Write(writer, p.Process.Pid, plan);
                checkDeadline();
            }
        }
        return streamer.BytesCopied - before;
    }

    private static int SignalFor(CheckpointRequest request) => AfterActionSignal.For(request.After, request.Signal);

    /// <summary>
    /// When the processes go on running, they are released before the fsync so they are frozen no
    /// longer than the copy; when they are to be stopped or killed, the file is committed first, so
    /// that a failed commit never costs the process. TCP connections leave repair mode before their
    /// process goes on; a killed process's connections are closed in repair mode after it is gone,
    /// so that they end without a FIN or RST and the peer waits for the restarted process.
    /// </summary>
    private static TimeSpan Finish(CheckpointRequest request, Action commit, List<FrozenProcess> tracees, TcpRepairHold connections,
        MessageLog log, Stopwatch frozen)
    {
        var signal = SignalFor(request);
        TimeSpan frozenFor;
        if (signal != Signals.SIGKILL) connections.Resume();
        if (signal == 0 || signal == Signals.SIGCONT)
        {
            foreach (var t in tracees) t.Release();
            frozenFor = frozen.Elapsed;
            log.Add($"released after {frozenFor.TotalMilliseconds:F1} ms frozen");
            commit();
            if (signal == Signals.SIGCONT)
                foreach (var t in tracees) Interop.kill(t.Pid, signal);
        }
        else
        {
            commit();
            foreach (var t in tracees)
            {
                if (signal == Signals.SIGKILL)
                {
                    t.KillAndReap();
                    continue;
                }
                t.Release(signal);
            }
            if (signal == Signals.SIGKILL && connections.Count > 0)
            {
                log.Add($"{connections.Count} TCP connection(s) closed in repair mode: their peers are left waiting for the restart");
                connections.CloseSilently();
            }
            frozenFor = frozen.Elapsed;
            log.Add($"sent {Signals.Name(signal)} to {string.Join(", ", tracees.Select(t => t.Pid))}");
        }
        return frozenFor;
    }

    private static void Commit(CheckpointRequest request, ContextDestination? destination, DirectoryDestination? directory, MessageLog log)
    {
        if (directory is not null)
        {
            directory.Commit(request.Sync);
            if (directory.BackupPath is not null) log.Add($"kept the previous checkpoint directory as {directory.BackupPath}");
            log.Add($"checkpoint directory {directory.FinalPath} in place{(request.Sync ? " and synced" : "")}");
            return;
        }
        destination!.Commit(request.Sync);
        if (destination.BackupPath is not null) log.Add($"kept the previous context file as {destination.BackupPath}");
        log.Add(destination.FinalPath is null ? "context written to the descriptor" : $"context file {destination.FinalPath} in place{(request.Sync ? " and synced" : "")}");
    }
}
