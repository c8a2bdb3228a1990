namespace CrCheckpoint.Engine.Schema;

/// <summary>Metadata of a PipeData record: the bytes in flight in one pipe, oldest first, as its data.</summary>
public sealed class PipeDataRecord
{
    public ulong Inode { get; init; }
    /// <summary>The pipe's capacity (F_GETPIPE_SZ), given back at restart.</summary>
    public int Capacity { get; init; }
}
