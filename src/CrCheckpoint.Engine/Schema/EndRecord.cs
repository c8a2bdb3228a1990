namespace CrCheckpoint.Engine.Schema;

/// <summary>
/// Metadata of the End record. Both numbers let the reader confirm that no record went missing between the
/// first and the last, which the per-record checksums alone cannot show.
/// </summary>
internal sealed class EndRecordMetadata
{
    /// <summary>Records before the End record, including skipped ones of unknown kinds.</summary>
    public long RecordCount { get; init; }

    /// <summary>Offset of the End record from the start of the file, i.e. all bytes before it.</summary>
    public long TotalBytes { get; init; }
}
