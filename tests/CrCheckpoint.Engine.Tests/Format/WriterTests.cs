using System.IO.Hashing;
using CrCheckpoint.Engine.Format;

namespace CrCheckpoint.Engine.Tests.Format;

public class WriterTests
{
    private static ContextWriter NewWriter(MemoryStream stream) => new(stream, new ContextWriterOptions { LeaveOpen = true });

    [Fact]
    public void HeaderIsWrittenAtOnce()
    {
        var stream = new MemoryStream();
        using var writer = NewWriter(stream);
        Assert.Equal(FormatConstants.FileHeaderLength, stream.Length);
        Assert.Equal(FormatConstants.FileHeaderLength, writer.BytesWritten);
    }

    [Fact]
    public void DataBeyondTheDeclaredLengthIsRefusedWithoutWritingIt()
    {
        var stream = new MemoryStream();
        using var writer = NewWriter(stream);
        var data = writer.BeginDataRecord(RecordKind.MemoryPages, "{}"u8, 10);
        data.Write(new byte[6]);
        long before = writer.BytesWritten;

        Assert.Throws<ArgumentException>(() => data.Write(new byte[5]));
        Assert.Equal(before, writer.BytesWritten);
        Assert.Equal(4, data.Remaining);
        data.Write(new byte[4]);
        Assert.Equal(XxHash3.HashToUInt64(new byte[10]), data.Complete());
    }

    [Fact]
    public void IncompleteDataRecordCannotBeCompleted()
    {
        using var writer = NewWriter(new MemoryStream());
        var data = writer.BeginDataRecord(RecordKind.FileContent, "{}"u8, 10);
        data.Write(new byte[9]);
        Assert.Throws<InvalidOperationException>(() => data.Complete());
    }

    [Fact]
    public void OpenDataRecordBlocksOtherWrites()
    {
        using var writer = NewWriter(new MemoryStream());
        var data = writer.BeginDataRecord(RecordKind.MemoryPages, "{}"u8, 1);
        Assert.Throws<InvalidOperationException>(() => writer.WriteRecord(RecordKind.Thread, "{}"u8));
        Assert.Throws<InvalidOperationException>(() => writer.BeginDataRecord(RecordKind.MemoryPages, "{}"u8, 1));
        Assert.Throws<InvalidOperationException>(() => writer.Finish());
        data.Write([1]);
        data.Complete();
        Assert.Throws<InvalidOperationException>(() => data.Write([1]));
        writer.Finish();
        Assert.Equal(1, writer.RecordCount);
    }

    [Fact]
    public void NothingCanBeWrittenAfterFinish()
    {
        using var writer = NewWriter(new MemoryStream());
        writer.Finish();
        Assert.Throws<InvalidOperationException>(() => writer.WriteRecord(RecordKind.Image, "{}"u8));
        Assert.Throws<InvalidOperationException>(() => writer.Finish());
    }

    [Theory]
    [InlineData(RecordKind.End)]
    [InlineData((RecordKind)0)]
    [InlineData((RecordKind)0x8000_0000)]
    public void ReservedKindsCannotBeWritten(RecordKind kind)
    {
        using var writer = NewWriter(new MemoryStream());
        Assert.ThrowsAny<ArgumentException>(() => writer.WriteRecord(kind, "{}"u8));
    }

    [Fact]
    public void DisposingWithoutFinishLeavesATruncatedFile()
    {
        var stream = new MemoryStream();
        using (var writer = NewWriter(stream))
            ContextFiles.Write(writer, ContextFiles.Small());
        Assert.Equal(ContextFormatError.Truncated, ContextFiles.Refused(stream.ToArray()).Error);
    }

    [Fact]
    public void DataStartsAlignedEvenAfterOddSizedMetadata()
    {
        using var writer = NewWriter(new MemoryStream());
        for (int i = 0; i < 5; i++)
        {
            var data = writer.BeginDataRecord(RecordKind.MemoryPages, new byte[i * 1001], 4096 + i);
            Assert.Equal(0, data.DataOffset % FormatConstants.DataAlignment);
            data.Write(new byte[4096 + i]);
            data.Complete();
        }
    }
}
