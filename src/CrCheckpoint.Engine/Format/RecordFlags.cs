namespace CrCheckpoint.Engine.Format;

/// <summary>
/// Flags of a record, stored as a little-endian u32 in its header.
/// </summary>
/// <remarks>
/// Bits not defined here are written as zero and ignored by readers: a later version that needs a flag
/// changing how a record is read must come with an incompatible file flag (as <see cref="RawData"/> comes with
/// <see cref="FileFlags.RawData"/>), a new record kind or a new major version.
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

    /// <summary>
    /// Since 1.3, only in files with <see cref="FileFlags.RawData"/> (ignored in others, as 1.0 to 1.2 readers did):
    /// the record's data is the raw data of its metadata, the bytes its byte arrays reference. It is never padded,
    /// at most <see cref="FormatConstants.MaxMetadataLength"/> long, and read and verified with the metadata.
    /// </summary>
    RawData = 2,
}
