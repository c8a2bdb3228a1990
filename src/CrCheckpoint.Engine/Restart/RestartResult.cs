namespace CrCheckpoint.Engine.Restart;

public sealed class RestartResult
{
    public required string Path { get; init; }
    /// <summary>The ids of the restarted processes (the original ones unless -NoRestorePid).</summary>
    public int[] ProcessIds { get; init; } = [];
    /// <summary>The ids the processes had when they were checkpointed.</summary>
    public int[] OriginalProcessIds { get; init; } = [];
    public TimeSpan Duration { get; init; }
    public long MemoryBytes { get; init; }
    public IReadOnlyList<string> Messages { get; init; } = [];
    internal IReadOnlyList<ChildWatcher> Processes { get; init; } = [];

    /// <summary>Set by <see cref="WaitForExit"/>: the exit code of the (first) restarted process.</summary>
    public int? ExitCode { get; private set; }
    /// <summary>Set by <see cref="WaitForExit"/>: the signal that ended the (first) restarted process.</summary>
    public string? ExitSignal { get; private set; }
    public IReadOnlyList<ProcessExit> Exits { get; private set; } = [];

    /// <summary>Waits for every restarted process to end and records how each ended.</summary>
    public IReadOnlyList<ProcessExit> WaitForExit(CancellationToken cancel = default)
    {
        Exits = Processes.Select(p => p.WaitForExit(cancel)).ToList();
        ExitCode = Exits.FirstOrDefault()?.ExitCode;
        ExitSignal = Exits.FirstOrDefault()?.Signal is { } s ? Native.Signals.Name(s) : null;
        return Exits;
    }
}

/// <summary>How a restarted process ended: an exit code or the signal that killed it.</summary>
public sealed record ProcessExit(int ProcessId, int? ExitCode, int? Signal)
{
    public string SignalName => Signal is { } s ? Native.Signals.Name(s) : "";
}
