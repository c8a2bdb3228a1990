using CrCheckpoint.Engine.Format;

namespace CrCheckpoint.Engine.Tests.Format;

public class ExtensibilityTests
{
    private const RecordKind FutureKind = (RecordKind)0x100;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void UnknownNonCriticalRecordIsSkipped(bool seekable)
    {
        var records = ContextFiles.Small().ToList();
        records.Insert(1, new SampleRecord(FutureKind, RecordFlags.None, "{\"later\":1}"u8.ToArray(), ContextFiles.Bytes(5000, seed: 3)));
        records.Insert(3, new SampleRecord(FutureKind + 1, RecordFlags.None, "{}"u8.ToArray(), null));
        Stream source = new MemoryStream(ContextFiles.Build(records));
        if (!seekable)
            source = new NonSeekableStream(source);

        using var reader = new ContextReader(source);
        var kinds = new List<RecordKind>();
        while (reader.ReadNext() is { } record)
            kinds.Add(record.Kind);

        Assert.Equal([RecordKind.Image, RecordKind.MemoryPages, RecordKind.Thread], kinds);
        Assert.Equal(records.Count, reader.RecordCount);
    }

    [Fact]
    public void DamagedUnknownRecordIsStillDetected()
    {
        var records = ContextFiles.Small().ToList();
        records.Insert(1, new SampleRecord(FutureKind, RecordFlags.None, "{}"u8.ToArray(), ContextFiles.Bytes(5000, seed: 3)));
        byte[] file = ContextFiles.Build(records);
        file[2 * FormatConstants.DataAlignment + 100] ^= 4;

        Assert.Equal(ContextFormatError.Corrupt, ContextFiles.Refused(file).Error);
    }

    [Fact]
    public void UnknownCriticalRecordIsRefused()
    {
        var records = ContextFiles.Small().ToList();
        records.Insert(2, new SampleRecord(FutureKind, RecordFlags.Critical, "{}"u8.ToArray(), null));
        byte[] file = ContextFiles.Build(records);

        using var reader = new ContextReader(new MemoryStream(file), sourceName: "job.ctx");
        Assert.Equal(RecordKind.Image, reader.ReadNext()!.Kind);
        Assert.Equal(RecordKind.MemoryPages, reader.ReadNext()!.Kind);
        var e = Assert.Throws<ContextFormatException>(() => reader.ReadNext());

        Assert.Equal(ContextFormatError.UnknownCriticalRecord, e.Error);
        Assert.StartsWith("job.ctx has a record of kind 0x100", e.Message);
        Assert.Contains("Upgrade CrCheckpoint", e.Message);
    }

    /// <summary>A value this version does not know, in a file of a newer minor version, is a newer feature, not damage.</summary>
    [Theory]
    [InlineData(7, ContextFormatError.UnsupportedVersion)]
    [InlineData(FormatConstants.MinorVersion, ContextFormatError.Corrupt)]
    public void UnknownEnumValueIsUnsupportedVersionInANewerFile(int minor, ContextFormatError expected)
    {
        var table = "{\"pid\":1,\"descriptors\":[{\"fd\":3,\"kind\":\"quantumEntangler\"}]}"u8.ToArray();
        var records = new List<SampleRecord> { new(RecordKind.FileTable, RecordFlags.Critical, table, null) };
        byte[] file = ContextFiles.Build(records);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(10), (ushort)minor);
        ContextFiles.Reseal(file);

        using var reader = new ContextReader(new MemoryStream(file));
        var record = reader.ReadNext()!;
        var e = Assert.Throws<ContextFormatException>(() => record.GetMetadata<CrCheckpoint.Engine.Schema.FileTableRecord>());
        Assert.Equal(expected, e.Error);
    }
}
