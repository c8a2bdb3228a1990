namespace CrCheckpoint.Engine.Checkpoint;

public enum CheckpointFailure
{
    ProcessNotFound,
    PermissionDenied,
    /// <summary>The process holds state this version cannot save, or is of a kind that cannot be checkpointed.</summary>
    Unsupported,
    InvalidRequest,
    DestinationExists,
    DestinationFailed,
    TimedOut,
    /// <summary>The process exited while it was being checkpointed.</summary>
    ProcessExited,
    /// <summary>Skipped by a --ptraced-skip or --ptracer-skip policy, leaving nothing to checkpoint.</summary>
    NothingToCheckpoint,
    /// <summary>Anything else went wrong; the message says what.</summary>
    Failed,
}

public sealed class CheckpointException(CheckpointFailure failure, string message, int? pid = null, Exception? inner = null)
    : Exception(message, inner)
{
    public CheckpointFailure Failure { get; } = failure;
    public int? Pid { get; } = pid;
    /// <summary>What the engine said before it failed (the man page's --kmsg-error).</summary>
    public IReadOnlyList<string> Messages { get; init; } = [];
}
