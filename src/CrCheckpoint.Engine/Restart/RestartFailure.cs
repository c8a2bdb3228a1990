namespace CrCheckpoint.Engine.Restart;

public enum RestartFailure
{
    ContextNotFound,
    /// <summary>Truncated, corrupt, foreign or too new.</summary>
    ContextInvalid,
    /// <summary>The original pid belongs to a running process.</summary>
    PidInUse,
    FileMissing,
    /// <summary>A name the restart must bind (a listening socket's) is held by a live socket.</summary>
    FileInUse,
    FileChanged,
    Unsupported,
    PermissionDenied,
    /// <summary>Read back before the processes were let go, restored state differed from the context (the restart checks itself).</summary>
    Mismatch,
    Failed,
}

public sealed class RestartException(RestartFailure failure, string message, string? target = null, Exception? inner = null)
    : Exception(message, inner)
{
    public RestartFailure Failure { get; } = failure;
    /// <summary>The file or process the failure is about.</summary>
    public string? Target { get; } = target;
    public IReadOnlyList<string> Messages { get; init; } = [];
}
