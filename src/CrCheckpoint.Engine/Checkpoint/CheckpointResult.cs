namespace CrCheckpoint.Engine.Checkpoint;

public sealed class CheckpointResult
{
    /// <summary>The context file written, or null when written to a descriptor.</summary>
    public string? Path { get; init; }
    public int[] ProcessIds { get; init; } = [];
    public long Bytes { get; init; }
    public long MemoryBytes { get; init; }
    public TimeSpan Duration { get; init; }
    /// <summary>How long the processes were stopped.</summary>
    public TimeSpan FrozenFor { get; init; }
    public AfterAction After { get; init; }
    public int Signal { get; init; }
    public string? BackupPath { get; init; }
    /// <summary>The engine's account of what it did (BLCR's "kernel messages").</summary>
    public IReadOnlyList<string> Messages { get; init; } = [];
}
