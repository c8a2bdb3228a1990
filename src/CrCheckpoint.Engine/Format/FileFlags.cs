namespace CrCheckpoint.Engine.Format;

/// <summary>
/// Flags in the file header. The low 16 bits are compatible (a reader ignores bits it does not know); the high 16
/// bits are incompatible (a reader refuses a file with a bit it does not know), so a minor version can add either kind.
/// </summary>
[Flags]
internal enum FileFlags : uint
{
    None = 0,

    /// <summary>Data of every record with data starts at a multiple of the header's alignment field.</summary>
    DataAligned = 1,

    /// <summary>
    /// Since 1.2: the records carry attributes a restart must give back (locks, owners, capabilities,
    /// scheduling...). A reader that does not know this bit would restart the processes without them,
    /// silently wrong, so it must refuse the file instead.
    /// </summary>
    ExactState = 1 << 16,

    /// <summary>
    /// Since 1.3: the byte arrays of record metadata are raw data beside it (records flagged
    /// <see cref="RecordFlags.RawData"/>), the JSON holding references into it. A reader that does not know this bit
    /// would find objects where it expects base64 strings, and would pad, skip and map those records' data as
    /// if it were pages; it must refuse the file.
    /// </summary>
    RawData = 1 << 17,

    IncompatibleMask = 0xFFFF_0000,
    KnownIncompatible = ExactState | RawData,
}
