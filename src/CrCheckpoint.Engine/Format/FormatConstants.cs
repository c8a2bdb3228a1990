namespace CrCheckpoint.Engine.Format;

/// <summary>
/// Fixed numbers of the context file format; docs/context-format.md is the authority they follow.
/// </summary>
public static class FormatConstants
{
    /// <summary>
    /// First 8 bytes of every context file: 0x89 "CRCKPT" '\n'. The high-bit first byte marks the file as binary and
    /// catches 7-bit transfers; the trailing newline catches line-ending conversion.
    /// </summary>
    public static ReadOnlySpan<byte> Magic => [0x89, (byte)'C', (byte)'R', (byte)'C', (byte)'K', (byte)'P', (byte)'T', (byte)'\n'];

    /// <summary>The major format version this code writes and the only one it reads.</summary>
    public const int MajorVersion = 1;

    /// <summary>The minor format version this code writes; files of any minor version of <see cref="MajorVersion"/> are read.</summary>
    /// <remarks>1.3: byte arrays of metadata as raw data beside it (<see cref="FileFlags.RawData"/>).</remarks>
    public const int MinorVersion = 3;

    /// <summary>Size of the file header in format version 1.</summary>
    public const int FileHeaderLength = 64;

    /// <summary>Size of the fixed header in front of each record.</summary>
    public const int RecordHeaderLength = 56;

    /// <summary>Size of the trailer after each record's data: the data checksum.</summary>
    public const int RecordTrailerLength = 8;

    /// <summary>Data of records starts on a multiple of this many bytes from the start of the file, when the file is aligned.</summary>
    public const int DataAlignment = 4096;

    /// <summary>
    /// Largest metadata a record may have. Metadata is held in memory whole, so a damaged or hostile length must not
    /// make the reader allocate without bound; bulk content belongs in the data part.
    /// </summary>
    public const int MaxMetadataLength = 64 * 1024 * 1024;

    /// <summary>Record marker, little-endian u32 of the bytes 0x89 'R' 'E' 'C'; lets a reader tell a misplaced header from a damaged one.</summary>
    public const uint RecordMarker = 0x4345_5289;

    /// <summary>Whether this version knows the kind (and so must not skip it).</summary>
    internal static bool IsKnownKind(RecordKind kind) =>
        kind is >= RecordKind.Image and <= RecordKind.SocketData or RecordKind.End;
}
