using System.Diagnostics;
using CrCheckpoint.Engine.Format;
using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Proc;
using CrCheckpoint.Engine.State;
using CrCheckpoint.Engine.State.Files;
using CrCheckpoint.Engine.State.Memory;
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
        TimeoutException => new CheckpointException(CheckpointFailure.TimedOut, e.Message, id, e) { Messages = log.Messages },
        _ => new CheckpointException(CheckpointFailure.DestinationFailed,
            $"checkpoint of {id} failed: {e.Message}. The process was left running as before.", id, e) { Messages = log.Messages },
    };

    private static CheckpointResult RunTraced(CheckpointRequest request, MessageLog log)
    {
        var clock = Stopwatch.StartNew();
        var deadline = request.Timeout is { } t ? clock.Elapsed + t : TimeSpan.MaxValue;
        void CheckDeadline()
        {
            if (clock.Elapsed > deadline)
                throw new TimeoutException($"the checkpoint of {request.Id} took longer than {request.Timeout!.Value.TotalSeconds:0.###} s (-Timeout); the process was left running as before and no context file was written.");
        }

        if (request.Directory is not null)
            throw new CheckpointException(CheckpointFailure.InvalidRequest,
                "-Directory (one context file per process) comes with process-tree support; this version writes one file: use -Path.");

        var pids = ProcessSelection.Resolve(request, log);
        var states = pids.ToDictionary(p => p, p => ProcStat.Read(p).State);

        using var destination = request.Fd is { } fd
            ? ContextDestination.OpenDescriptor(fd)
            : ContextDestination.Open(request, ContextDestination.Resolve(request.WorkingDirectory, request.Path ?? $"context.{request.Id}"));
        CheckDeadline();

        using var streamer = new PageStreamer();
        var tracees = new List<FrozenProcess>();
        var frozen = Stopwatch.StartNew();
        var released = false;
        try
        {
            foreach (var pid in pids) tracees.Add(FrozenProcess.Freeze(pid));
            frozen.Restart();
            log.Add($"froze {string.Join(", ", pids)}");

            var captured = tracees.Select(tr => ProcessCapture.Capture(tr, states[tr.Pid], request.Save, log)).ToList();
            CheckDeadline();

            long memoryBytes;
            using (var writer = new ContextWriter(destination.Stream, new ContextWriterOptions { AlignData = destination.AlignData, LeaveOpen = true }))
            {
                writer.WriteRecord(RecordKind.Image, new ImageRecord
                {
                    ToolVersion = Version,
                    CreatedUtc = DateTimeOffset.UtcNow,
                    Hostname = Environment.MachineName,
                    KernelRelease = File.ReadAllText("/proc/sys/kernel/osrelease").Trim(),
                    Scope = request.Scope.ToString(),
                    RequestedId = request.Id,
                    ProcessIds = pids.ToArray(),
                    SaveMappedFiles = request.Save.ToString(),
                });
                memoryBytes = WriteProcesses(writer, captured, streamer, CheckDeadline);
                writer.Finish();
                destination.Flush();
                log.Add($"wrote {writer.BytesWritten} bytes in {writer.RecordCount} records ({memoryBytes} bytes of memory)");
            }

            var frozenFor = Finish(request, destination, tracees, log, frozen);
            released = true;
            var bytes = destination.Stream.CanSeek ? destination.Stream.Length : 0;
            return new CheckpointResult
            {
                Path = destination.FinalPath,
                ProcessIds = pids.ToArray(),
                Bytes = bytes,
                MemoryBytes = memoryBytes,
                Duration = clock.Elapsed,
                FrozenFor = frozenFor,
                After = request.After,
                Signal = SignalFor(request),
                BackupPath = destination.BackupPath,
                Messages = log.Messages,
            };
        }
        finally
        {
            if (!released)
            {
                foreach (var tracee in tracees) tracee.DetachQuietly();
                destination.Abort();
                if (tracees.Count > 0) log.Add("released the processes unchanged after the failure");
            }
        }
    }

    private static long WriteProcesses(ContextWriter writer, List<CapturedProcess> captured, PageStreamer streamer, Action checkDeadline)
    {
        long memoryBytes = 0;
        var fileBuffer = new byte[1 << 20];
        foreach (var p in captured)
        {
            writer.WriteRecord(RecordKind.Process, p.Process);
            foreach (var thread in p.Threads) writer.WriteRecord(RecordKind.Thread, thread);
            writer.WriteRecord(RecordKind.MemoryMap, p.Map);
            writer.WriteRecord(RecordKind.FileTable, p.Files);
            foreach (var file in p.FilesToSave) FileContentWriter.Write(writer, file, fileBuffer);
            foreach (var plan in p.Plans.Where(pl => pl.Runs.Count > 0))
            {
                streamer.Write(writer, p.Process.Pid, plan);
                checkDeadline();
            }
            memoryBytes = streamer.BytesCopied;
        }
        return memoryBytes;
    }

    private static int SignalFor(CheckpointRequest request) => AfterActionSignal.For(request.After, request.Signal);

    /// <summary>
    /// When the processes go on running, they are released before the fsync so they are frozen no
    /// longer than the copy; when they are to be stopped or killed, the file is committed first, so
    /// that a failed commit never costs the process.
    /// </summary>
    private static TimeSpan Finish(CheckpointRequest request, ContextDestination destination, List<FrozenProcess> tracees, MessageLog log, Stopwatch frozen)
    {
        var signal = SignalFor(request);
        TimeSpan frozenFor;
        if (signal == 0 || signal == Signals.SIGCONT)
        {
            foreach (var t in tracees) t.Release();
            frozenFor = frozen.Elapsed;
            log.Add($"released after {frozenFor.TotalMilliseconds:F1} ms frozen");
            Commit(request, destination, log);
            if (signal == Signals.SIGCONT)
                foreach (var t in tracees) Interop.kill(t.Pid, signal);
        }
        else
        {
            Commit(request, destination, log);
            foreach (var t in tracees)
            {
                if (signal == Signals.SIGKILL)
                {
                    t.KillAndReap();
                    continue;
                }
                t.Leader.SendSignal(signal);
                t.Release();
            }
            frozenFor = frozen.Elapsed;
            log.Add($"sent {Signals.Name(signal)} to {string.Join(", ", tracees.Select(t => t.Pid))}");
        }
        return frozenFor;
    }

    private static void Commit(CheckpointRequest request, ContextDestination destination, MessageLog log)
    {
        destination.Commit(request.Sync);
        if (destination.BackupPath is not null) log.Add($"kept the previous context file as {destination.BackupPath}");
        log.Add(destination.FinalPath is null ? "context written to the descriptor" : $"context file {destination.FinalPath} in place{(request.Sync ? " and synced" : "")}");
    }
}
