using System.Text.Json;

namespace CrCheckpoint.Engine.Format;

/// <summary>One record as seen by <see cref="ContextReader.ReadNext"/>. Its metadata has been verified against its checksum.</summary>
public sealed class RecordInfo
{
    internal RecordInfo(RecordKind kind, RecordFlags flags, byte[] metadata, long dataLength, long dataOffset, long recordOffset, long sequence)
    {
        Kind = kind;
        Flags = flags;
        Metadata = metadata;
        DataLength = dataLength;
        DataOffset = dataOffset;
        RecordOffset = recordOffset;
        Sequence = sequence;
    }

    public RecordKind Kind { get; }

    public RecordFlags Flags { get; }

    /// <summary>The metadata bytes (UTF-8 JSON for every kind version 1 defines).</summary>
    public byte[] Metadata { get; }

    public long DataLength { get; }

    /// <summary>
    /// Position of the first data byte in the source stream (a file offset, suitable for mapping when the file is
    /// aligned), or -1 when the source cannot seek, because then there is no file to find the data in later.
    /// </summary>
    public long DataOffset { get; }

    /// <summary>
    /// The data checksum from the record's trailer, once the data has been consumed or skipped; 0 before.
    /// When the data was skipped by seeking, it was taken from the trailer without verification.
    /// </summary>
    public ulong DataChecksum { get; internal set; }

    /// <summary>Whether <see cref="DataChecksum"/> has been read from the trailer.</summary>
    public bool DataChecksumKnown { get; internal set; }

    /// <summary>Position of the record header in the source stream (bytes from the start of the context when it cannot seek).</summary>
    public long RecordOffset { get; }

    /// <summary>Index of the record in the file, counting from 0 and including skipped records.</summary>
    public long Sequence { get; }

    /// <summary>The minor format version of the file the record is in.</summary>
    internal int FileMinorVersion { get; init; } = FormatConstants.MinorVersion;

    /// <summary>Whether the file keeps the byte arrays of metadata as raw data (since 1.3), not base64.</summary>
    internal bool FileHasRawData { get; init; }

    /// <summary>The record's data when it is the raw data of its metadata (<see cref="RecordFlags.RawData"/>): read and verified with the header; null otherwise.</summary>
    internal byte[]? RawData { get; set; }

    /// <summary>
    /// Deserializes the metadata with <see cref="ContextJson.Options"/>; its byte arrays come from the record's raw
    /// data (or, in files before 1.3, from base64).
    /// </summary>
    /// <exception cref="ContextFormatException">
    /// The metadata holds a value this version does not know (<see cref="ContextFormatError.UnsupportedVersion"/>), or
    /// is not JSON of the expected shape (<see cref="ContextFormatError.Corrupt"/>; UnsupportedVersion in a file of a
    /// newer minor version).
    /// </exception>
    public T GetMetadata<T>()
    {
        try
        {
            using (RawDataConverter.Reading(FileHasRawData, RawData))
            {
                var value = JsonSerializer.Deserialize<T>(Metadata, ContextJson.Options);
                return value ?? throw new JsonException("The metadata is JSON null.");
            }
        }
        catch (UnknownValueException e)
        {
            // The checksum matched: the writer meant this value. Only a newer version (or one that broke the rule that
            // new values come with an incompatible flag) writes what this one does not know; upgrading is the remedy.
            throw new ContextFormatException(ContextFormatError.UnsupportedVersion, RecordOffset,
                $"The metadata of the {Kind} record at byte {RecordOffset} holds a value this version of CrCheckpoint does not know " +
                $"at {e.Path}: {e.Message} The file (format 1.{FileMinorVersion}) was written by a newer version; upgrade CrCheckpoint to restore it.", e);
        }
        catch (JsonException e) when (FileMinorVersion > FormatConstants.MinorVersion)
        {
            // A newer minor version may use values this version does not know (a new kind of descriptor...).
            throw new ContextFormatException(ContextFormatError.UnsupportedVersion, RecordOffset,
                $"The metadata of the {Kind} record at byte {RecordOffset} holds what this version of CrCheckpoint does not know " +
                $"(the file is of format 1.{FileMinorVersion}, this version reads up to 1.{FormatConstants.MinorVersion}): {e.Message} Upgrade CrCheckpoint to restore it.", e);
        }
        catch (JsonException e)
        {
            // The checksum matched, so the bytes are what the writer wrote: the writer and reader disagree on the schema.
            throw new ContextFormatException(ContextFormatError.Corrupt, RecordOffset,
                $"The metadata of the {Kind} record at byte {RecordOffset} cannot be read as {typeof(T).Name}: {e.Message} " +
                "The file was written by a program that does not follow the context format; it cannot be restored.", e);
        }
    }

    public override string ToString() => $"{Kind} record #{Sequence} at {RecordOffset}: {Metadata.Length} bytes metadata, {DataLength} bytes data";
}
