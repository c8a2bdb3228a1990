namespace CrCheckpoint.Engine.Schema;

/// <summary>Metadata of a MemoryPages record; its data is the listed pages, back to back, in order.</summary>
public sealed class MemoryPagesRecord
{
    public int Pid { get; init; }
    public ulong AreaStart { get; init; }
    /// <summary>Pairs [first page, page count], counted in 4096-byte pages from AreaStart.</summary>
    public long[][] Runs { get; init; } = [];
}
