namespace CrCheckpoint.Engine.Tracing;

/// <summary>The traced process or thread exited (or was killed) while the engine was working on it.</summary>
public sealed class TraceeGoneException(int tid, string detail)
    : Exception($"process {tid} exited while it was being checkpointed ({detail})")
{
    public int Tid { get; } = tid;
}
