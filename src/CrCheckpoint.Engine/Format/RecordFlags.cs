namespace CrCheckpoint.Engine.Format;

/// <summary>
/// Flags of a record, stored as a little-endian u32 in its header.
/// </summary>
/// <remarks>
/// Bits not defined here are written as zero and ignored by readers: a later version that needs a flag
/// changing how a record is read must use a new record kind or a new major version instead.
/// </remarks>
[Flags]
public enum RecordFlags : uint
{
    None = 0,

    /// <summary>
    /// A reader that does not know the record's kind must refuse the file instead of skipping the record,
    /// because a restart without it would be wrong.
    /// </summary>
    Critical = 1,
}
