using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using CrCheckpoint.Engine.Format;

namespace CrCheckpoint.Engine.Tests.Format;

public class DamageTests
{
    public static TheoryData<bool, bool> ReadModes => new() { { true, true }, { true, false }, { false, true }, { false, false } };

    [Theory]
    [MemberData(nameof(ReadModes))]
    public void TruncationAtEveryByteIsRefused(bool verify, bool seekable)
    {
        byte[] file = ContextFiles.Build(ContextFiles.Small());
        for (int length = 0; length < file.Length; length++)
        {
            var e = ContextFiles.Refused(file, length, verify, seekable);
            Assert.True(e.Error == ContextFormatError.Truncated, $"cut at {length}: {e.Error}: {e.Message}");
        }
    }

    [Fact]
    public void TruncationOfALargerFileIsRefused()
    {
        byte[] file = ContextFiles.Build(ContextFiles.AllKinds());
        for (int length = 0; length < file.Length; length += length < 200 ? 1 : 53)
            Assert.Equal(ContextFormatError.Truncated, ContextFiles.Refused(file, length, verify: false).Error);
        Assert.Equal(ContextFormatError.Truncated, ContextFiles.Refused(file, file.Length - 1).Error);
    }

    [Fact]
    public void TruncationMessageSaysWhatHappenedAndWhatToDo()
    {
        byte[] file = ContextFiles.Build(ContextFiles.Small());
        var stream = new MemoryStream(file, 0, 500);
        var e = Assert.Throws<ContextFormatException>(() => ContextFiles.ReadAll(new NonSeekableStream(stream)));
        Assert.Equal(500, e.Offset);
        Assert.Contains("truncated at byte 500", e.Message);
        Assert.Contains("did not finish", e.Message);
        Assert.Contains("earlier context file", e.Message);
    }

    [Fact]
    public void FileWithoutEndRecordIsTruncated()
    {
        byte[] file = ContextFiles.Build(ContextFiles.Small(), finish: false);
        var e = ContextFiles.Refused(file);
        Assert.Equal(ContextFormatError.Truncated, e.Error);
        Assert.Equal(file.Length, e.Offset);
        Assert.Contains("without an End record", e.Message);
    }

    [Theory]
    [MemberData(nameof(ReadModes))]
    public void BitFlipAnywhereIsRefused(bool align, bool seekable)
    {
        byte[] file = ContextFiles.Build(ContextFiles.Small(), align);
        for (int i = 0; i < file.Length; i++)
        {
            byte[] damaged = (byte[])file.Clone();
            damaged[i] ^= (byte)(1 << (i % 8));
            var e = ContextFiles.Refused(damaged, verify: true, seekable);
            var expected = i < FormatConstants.Magic.Length ? ContextFormatError.Foreign : ContextFormatError.Corrupt;
            Assert.True(e.Error == expected, $"flip at {i}: {e.Error}: {e.Message}");
        }
    }

    [Theory]
    [InlineData("file header", "file header's checksum")]
    [InlineData("record header", "record header's checksum")]
    [InlineData("metadata", "metadata of the MemoryPages record")]
    [InlineData("padding", "padding")]
    [InlineData("data", "data of the MemoryPages record")]
    [InlineData("trailer", "data of the MemoryPages record")]
    [InlineData("end record", "metadata of the End record")]
    public void BitFlipInEachRegionIsCorrupt(string region, string expectedMessage)
    {
        byte[] file = ContextFiles.Build(ContextFiles.Small());
        var records = ContextFiles.ReadAll(new MemoryStream(file)).Select(r => r.Info).ToList();
        var pages = records[1];
        int offset = region switch
        {
            "file header" => 20,
            "record header" => (int)pages.RecordOffset + 12,
            "metadata" => (int)pages.RecordOffset + FormatConstants.RecordHeaderLength + 3,
            "padding" => (int)pages.DataOffset - 1,
            "data" => (int)pages.DataOffset + 200,
            "trailer" => (int)(pages.DataOffset + pages.DataLength) + 2,
            "end record" => file.Length - 12,
            _ => throw new ArgumentOutOfRangeException(nameof(region)),
        };
        file[offset] ^= 0x10;

        var e = ContextFiles.Refused(file);

        Assert.Equal(ContextFormatError.Corrupt, e.Error);
        Assert.Contains(expectedMessage, e.Message);
        Assert.Contains("damaged", e.Message);
    }

    [Fact]
    public void MissingRecordIsCorruptEvenThoughEachRecordIsIntact()
    {
        byte[] file = ContextFiles.Build(ContextFiles.Small(), align: false);
        var records = ContextFiles.ReadAll(new MemoryStream(file)).Select(r => r.Info).ToList();
        int from = (int)records[1].RecordOffset, to = (int)records[2].RecordOffset;
        byte[] spliced = [.. file.AsSpan(0, from), .. file.AsSpan(to)];

        var e = ContextFiles.Refused(spliced);

        Assert.Equal(ContextFormatError.Corrupt, e.Error);
        Assert.Contains("missing or repeated", e.Message);
    }

    public static TheoryData<string, byte[]> ForeignFiles => new()
    {
        { "ELF", [0x7F, (byte)'E', (byte)'L', (byte)'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0x3E, 0, 1, 0, 0, 0] },
        { "text", Encoding.UTF8.GetBytes("hello, this is a text file\n") },
        { "bytes", new byte[100] },
        { "text", "ab"u8.ToArray() },
        { "gzip", [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3] },
    };

    [Theory]
    [MemberData(nameof(ForeignFiles))]
    public void ForeignFileIsRefused(string looksLike, byte[] content)
    {
        var e = ContextFiles.Refused(content);
        Assert.Equal(ContextFormatError.Foreign, e.Error);
        Assert.Contains("is not a CrCheckpoint context file", e.Message);
        Assert.Contains(looksLike, e.Message);
    }

    [Fact]
    public void EmptyFileIsTruncated()
    {
        var e = ContextFiles.Refused([]);
        Assert.Equal(ContextFormatError.Truncated, e.Error);
        Assert.Contains("is empty", e.Message);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(0)]
    [InlineData(65535)]
    public void OtherMajorVersionIsRefused(int major)
    {
        byte[] file = ContextFiles.Build(ContextFiles.Small());
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(8), (ushort)major);
        var e = ContextFiles.Refused(ContextFiles.Reseal(file));
        Assert.Equal(ContextFormatError.UnsupportedVersion, e.Error);
        Assert.Contains($"format version {major}.{FormatConstants.MinorVersion}", e.Message);
        if (major > 1)
            Assert.Contains("Upgrade CrCheckpoint", e.Message);
    }

    [Fact]
    public void NewerMajorVersionWithALargerHeaderIsRefusedAsTooNew()
    {
        // A later major version may grow the header; its first 16 bytes and trailing checksum keep their places.
        byte[] header = new byte[128];
        FormatConstants.Magic.CopyTo(header);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(8), 3);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(10), 1);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(12), 128);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(120), XxHash3.HashToUInt64(header.AsSpan(0, 120)));

        var e = ContextFiles.Refused([.. header, .. new byte[1000]]);

        Assert.Equal(ContextFormatError.UnsupportedVersion, e.Error);
        Assert.Contains("format version 3.1", e.Message);
    }

    /// <summary>Every incompatible bit this version does not define (today 18-31) means "too new", never "damaged".</summary>
    [Fact]
    public void UnknownIncompatibleHeaderFlagIsRefused()
    {
        int refused = 0;
        for (int bit = 16; bit < 32; bit++)
        {
            if (((uint)FileFlags.KnownIncompatible & (1u << bit)) != 0) continue;
            byte[] file = ContextFiles.Build(ContextFiles.Small());
            BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(16), BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(16)) | (1u << bit));
            var e = ContextFiles.Refused(ContextFiles.Reseal(file));
            Assert.Equal(ContextFormatError.UnsupportedVersion, e.Error);
            Assert.Contains("Upgrade CrCheckpoint", e.Message);
            refused++;
        }
        Assert.Equal(14, refused);
    }

    [Fact]
    public void NewerMinorVersionAndUnknownCompatibleFlagAreRead()
    {
        var records = ContextFiles.Small();
        byte[] file = ContextFiles.Build(records);
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(10), 7);
        file[16] |= 0x20;
        ContextFiles.Reseal(file);

        using var reader = new ContextReader(new MemoryStream(file));
        Assert.Equal(1, reader.FormatMajor);
        Assert.Equal(7, reader.FormatMinor);
        Assert.Equal(records.Count, ContextFiles.ReadAll(new MemoryStream(file)).Count);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void BytesAfterTheEndRecordAreRefused(bool seekable)
    {
        byte[] file = ContextFiles.Build(ContextFiles.Small());
        foreach (byte[] garbage in new[] { [0], "x"u8.ToArray(), file })
        {
            var e = ContextFiles.Refused([.. file, .. garbage], seekable: seekable);
            Assert.Equal(ContextFormatError.Corrupt, e.Error);
            Assert.Equal(file.Length, e.Offset);
            Assert.Contains("follow the End record", e.Message);
        }
    }

    [Fact]
    public void ReaderStaysRefusedAfterAnError()
    {
        byte[] file = ContextFiles.Build(ContextFiles.Small());
        file[^20] ^= 1;
        using var reader = new ContextReader(new MemoryStream(file));
        var first = Assert.Throws<ContextFormatException>(() => { while (reader.ReadNext() is not null) { } });
        var again = Assert.Throws<ContextFormatException>(() => reader.ReadNext());
        Assert.Equal(first.Error, again.Error);
        Assert.Equal(first.Offset, again.Offset);
    }
}
