namespace CrCheckpoint.Engine.State.Memory;

/// <summary>The mm fields a restart gives back with prctl(PR_SET_MM_MAP).</summary>
public sealed class MemoryLayoutRecord
{
    public ulong StartCode { get; init; }
    public ulong EndCode { get; init; }
    public ulong StartData { get; init; }
    public ulong EndData { get; init; }
    public ulong StartBrk { get; init; }
    public ulong Brk { get; init; }
    public ulong StartStack { get; init; }
    public ulong ArgStart { get; init; }
    public ulong ArgEnd { get; init; }
    public ulong EnvStart { get; init; }
    public ulong EnvEnd { get; init; }
    /// <summary>The raw auxiliary vector (/proc/PID/auxv).</summary>
    public byte[] Auxv { get; init; } = [];
}
