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
}
