using System.Buffers.Binary;
using System.IO.Hashing;

namespace CrCheckpoint.Engine.Format;

/// <summary>The fixed header in front of each record, decoded.</summary>
internal readonly record struct RecordHeader(
    RecordKind Kind,
    RecordFlags Flags,
    uint PaddingLength,
    ulong MetadataLength,
    ulong DataLength,
    ulong Sequence,
    ulong MetadataChecksum)
{
    public const int MarkerOffset = 0;
    public const int KindOffset = 4;
    public const int FlagsOffset = 8;
    public const int PaddingOffset = 12;
    public const int MetadataLengthOffset = 16;
    public const int DataLengthOffset = 24;
    public const int SequenceOffset = 32;
    public const int MetadataChecksumOffset = 40;
    public const int ChecksumOffset = 48;

    public void Encode(Span<byte> destination)
    {
        var h = destination[..FormatConstants.RecordHeaderLength];
        BinaryPrimitives.WriteUInt32LittleEndian(h[MarkerOffset..], FormatConstants.RecordMarker);
        BinaryPrimitives.WriteUInt32LittleEndian(h[KindOffset..], (uint)Kind);
        BinaryPrimitives.WriteUInt32LittleEndian(h[FlagsOffset..], (uint)Flags);
        BinaryPrimitives.WriteUInt32LittleEndian(h[PaddingOffset..], PaddingLength);
        BinaryPrimitives.WriteUInt64LittleEndian(h[MetadataLengthOffset..], MetadataLength);
        BinaryPrimitives.WriteUInt64LittleEndian(h[DataLengthOffset..], DataLength);
        BinaryPrimitives.WriteUInt64LittleEndian(h[SequenceOffset..], Sequence);
        BinaryPrimitives.WriteUInt64LittleEndian(h[MetadataChecksumOffset..], MetadataChecksum);
        BinaryPrimitives.WriteUInt64LittleEndian(h[ChecksumOffset..], XxHash3.HashToUInt64(h[..ChecksumOffset]));
    }

    /// <summary>Checks marker and checksum before any field is trusted, so a damaged length is never acted upon.</summary>
    public static bool TryDecode(ReadOnlySpan<byte> source, out RecordHeader header, out string? problem)
    {
        var h = source[..FormatConstants.RecordHeaderLength];
        header = default;
        if (BinaryPrimitives.ReadUInt32LittleEndian(h[MarkerOffset..]) != FormatConstants.RecordMarker)
        {
            problem = "no record header where one must start";
            return false;
        }
        if (BinaryPrimitives.ReadUInt64LittleEndian(h[ChecksumOffset..]) != XxHash3.HashToUInt64(h[..ChecksumOffset]))
        {
            problem = "the record header's checksum does not match";
            return false;
        }
        header = new RecordHeader(
            (RecordKind)BinaryPrimitives.ReadUInt32LittleEndian(h[KindOffset..]),
            (RecordFlags)BinaryPrimitives.ReadUInt32LittleEndian(h[FlagsOffset..]),
            BinaryPrimitives.ReadUInt32LittleEndian(h[PaddingOffset..]),
            BinaryPrimitives.ReadUInt64LittleEndian(h[MetadataLengthOffset..]),
            BinaryPrimitives.ReadUInt64LittleEndian(h[DataLengthOffset..]),
            BinaryPrimitives.ReadUInt64LittleEndian(h[SequenceOffset..]),
            BinaryPrimitives.ReadUInt64LittleEndian(h[MetadataChecksumOffset..]));
        problem = null;
        return true;
    }
}
