using System.Buffers.Binary;
using System.IO.Hashing;

namespace CrCheckpoint.Engine.Format;

/// <summary>
/// Encoding of the file header. The first 16 bytes (magic, major, minor, header length) and the rule that the last
/// 8 bytes of the header are its checksum stay the same in every major version, so that any reader can verify a
/// newer file's header and then say "too new" rather than "corrupt".
/// </summary>
internal static class FileHeader
{
    public const int MagicOffset = 0;
    public const int MajorOffset = 8;
    public const int MinorOffset = 10;
    public const int LengthOffset = 12;
    public const int FlagsOffset = 16;
    public const int AlignmentOffset = 20;
    public const int ChecksumOffset = 56;

    /// <summary>Bytes the reader needs before it knows how long the header is.</summary>
    public const int FixedPrefixLength = 16;

    /// <summary>Bounds on the header length of other major versions, so a damaged length cannot make the reader allocate without limit.</summary>
    public const int MinLength = FixedPrefixLength + 8;
    public const int MaxLength = 4096;

    public static void Encode(Span<byte> header, FileFlags flags, uint alignment)
    {
        header = header[..FormatConstants.FileHeaderLength];
        header.Clear();
        FormatConstants.Magic.CopyTo(header);
        BinaryPrimitives.WriteUInt16LittleEndian(header[MajorOffset..], FormatConstants.MajorVersion);
        BinaryPrimitives.WriteUInt16LittleEndian(header[MinorOffset..], FormatConstants.MinorVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(header[LengthOffset..], FormatConstants.FileHeaderLength);
        BinaryPrimitives.WriteUInt32LittleEndian(header[FlagsOffset..], (uint)flags);
        BinaryPrimitives.WriteUInt32LittleEndian(header[AlignmentOffset..], alignment);
        BinaryPrimitives.WriteUInt64LittleEndian(header[ChecksumOffset..], XxHash3.HashToUInt64(header[..ChecksumOffset]));
    }
}
