using CrCheckpoint.Engine.Proc;
using CrCheckpoint.Engine.State;
using CrCheckpoint.Engine.State.Files;
using CrCheckpoint.Engine.State.Memory;

namespace CrCheckpoint.Engine.Checkpoint;

public sealed record CheckpointabilityReport(int Id, string Name, bool Checkpointable, string? Reason, CheckpointFailure? Failure);

/// <summary>
/// Answers "could this be checkpointed now?" from /proc alone, without freezing anything: the same
/// checks a checkpoint makes before it seizes, plus the descriptors and timers it would refuse.
/// </summary>
public static class Checkpointability
{
    public static CheckpointabilityReport Check(int id, CheckpointScope scope)
    {
        var name = "";
        try
        {
            name = ProcStat.Read(id).Comm;
        }
        catch (IOException) { }
        try
        {
            var pids = ProcessSelection.Resolve(new CheckpointRequest { Id = id, Scope = scope }, new MessageLog(null));
            foreach (var pid in pids)
            {
                var table = FileCapture.Capture(pid).Table;
                // What waits in queues is told too: a checkpoint without -AcceptLoss refuses it.
                StateLoss.Check(pid, table, accept: false, log: null);
                PidFdState.CheckTargets([table], pids);
                MemoryCapture.CheckSupported(pid);
            }
            return new CheckpointabilityReport(id, name, true, null, null);
        }
        catch (CheckpointException e)
        {
            return new CheckpointabilityReport(id, name, false, e.Message, e.Failure);
        }
        catch (UnsupportedStateException e)
        {
            return new CheckpointabilityReport(id, name, false, e.Message, CheckpointFailure.Unsupported);
        }
        catch (UnauthorizedAccessException e)
        {
            return new CheckpointabilityReport(id, name, false, e.Message, CheckpointFailure.PermissionDenied);
        }
        catch (IOException e)
        {
            return new CheckpointabilityReport(id, name, false, $"process {id} is gone or unreadable: {e.Message}", CheckpointFailure.ProcessNotFound);
        }
    }
}
