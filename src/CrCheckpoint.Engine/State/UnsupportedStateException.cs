namespace CrCheckpoint.Engine.State;

/// <summary>The process holds something this version cannot save; the message names it and says what to do.</summary>
public sealed class UnsupportedStateException(int pid, string detail)
    : Exception($"process {pid}: {detail}")
{
    public int Pid { get; } = pid;
}
