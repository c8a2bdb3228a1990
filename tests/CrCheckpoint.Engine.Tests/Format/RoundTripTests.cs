using System.Buffers.Binary;
using System.IO.Hashing;
using System.IO.Pipes;
using CrCheckpoint.Engine.Format;

namespace CrCheckpoint.Engine.Tests.Format;

public class RoundTripTests
{
    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(false, false)]
    public void AllKindsComeBackAsWritten(bool align, bool seekable)
    {
        var records = ContextFiles.AllKinds();
        byte[] file = ContextFiles.Build(records, align);
        Stream source = new MemoryStream(file, writable: false);
        if (!seekable)
            source = new NonSeekableStream(source);

        var read = ContextFiles.ReadAll(source);

        Assert.Equal(records.Count, read.Count);
        for (int i = 0; i < records.Count; i++)
        {
            var (info, data) = read[i];
            Assert.Equal(records[i].Kind, info.Kind);
            Assert.Equal(records[i].Flags, info.Flags);
            Assert.Equal(records[i].Metadata, info.Metadata);
            Assert.Equal(records[i].Data?.Length ?? 0, info.DataLength);
            Assert.Equal(i, info.Sequence);
            if (data is not null)
                Assert.Equal(records[i].Data ?? [], data);
            if (info.DataChecksumKnown)
                Assert.Equal(XxHash3.HashToUInt64(records[i].Data ?? []), info.DataChecksum);
            Assert.Equal(seekable ? info.DataOffset : -1, info.DataOffset);
            if (seekable)
                Assert.Equal(records[i].Data ?? [], file.AsSpan((int)info.DataOffset, (int)info.DataLength).ToArray());
        }
    }

    [Fact]
    public void AlignedDataStartsOnPageBoundaries()
    {
        var records = ContextFiles.AllKinds();
        byte[] file = ContextFiles.Build(records, align: true);
        var read = ContextFiles.ReadAll(new MemoryStream(file));

        Assert.All(read.Where(r => r.Info.DataLength > 0), r => Assert.Equal(0, r.Info.DataOffset % FormatConstants.DataAlignment));
        using var reader = new ContextReader(new MemoryStream(file));
        Assert.True(reader.DataAligned);
        Assert.Equal(FormatConstants.DataAlignment, reader.Alignment);
    }

    [Fact]
    public void UnalignedFileHasNoPadding()
    {
        var records = ContextFiles.AllKinds();
        var read = ContextFiles.ReadAll(new MemoryStream(ContextFiles.Build(records, align: false)));

        Assert.All(read, r => Assert.Equal(r.Info.RecordOffset + FormatConstants.RecordHeaderLength + r.Info.Metadata.Length, r.Info.DataOffset));
    }

    [Fact]
    public void WriterOutputDoesNotDependOnTheStreamSeeking()
    {
        var records = ContextFiles.AllKinds();
        var pipeLike = new MemoryStream();
        using (var writer = new ContextWriter(new NonSeekableStream(pipeLike), new ContextWriterOptions { LeaveOpen = true }))
        {
            ContextFiles.Write(writer, records);
            writer.Finish();
            Assert.Equal(pipeLike.Length, writer.BytesWritten);
            Assert.Equal(records.Count, writer.RecordCount);
        }
        Assert.Equal(ContextFiles.Build(records), pipeLike.ToArray());
    }

    [Fact]
    public async Task StreamsThroughARealPipe()
    {
        byte[] pages = ContextFiles.Bytes(8 * 1024 * 1024 + 123, seed: 7);
        using var server = new AnonymousPipeServerStream(PipeDirection.Out);
        using var client = new AnonymousPipeClientStream(PipeDirection.In, server.ClientSafePipeHandle);
        var writerTask = Task.Run(() =>
        {
            using var writer = new ContextWriter(server, new ContextWriterOptions { LeaveOpen = false });
            writer.WriteRecord(RecordKind.Image, new SampleMetadata("image", 1, SampleState.Running));
            var data = writer.BeginDataRecord(RecordKind.MemoryPages, new SampleMetadata("pages", 1, SampleState.Stopped), pages.Length);
            for (int offset = 0; offset < pages.Length; offset += 1 << 20)
                data.Write(pages.AsSpan(offset, Math.Min(1 << 20, pages.Length - offset)));
            Assert.Equal(XxHash3.HashToUInt64(pages), data.Complete());
            writer.Finish();
        });

        using var reader = new ContextReader(client);
        var image = reader.ReadNext()!;
        Assert.Equal("image", image.GetMetadata<SampleMetadata>().Name);
        var record = reader.ReadNext()!;
        Assert.Equal(-1, record.DataOffset);
        var received = new byte[pages.Length];
        reader.ReadData(received.AsSpan(0, 1000));
        reader.ReadData(received.AsSpan(1000));
        Assert.Equal(pages, received);
        Assert.Null(reader.ReadNext());
        await writerTask;
    }

    [Fact]
    public void TypedMetadataIsCamelCaseJsonWithEnumNames()
    {
        var stream = new MemoryStream();
        using (var writer = new ContextWriter(stream, new ContextWriterOptions { LeaveOpen = true }))
        {
            writer.WriteRecord(RecordKind.Process, new SampleMetadata("sleep", 42, SampleState.Stopped));
            writer.Finish();
        }
        stream.Position = 0;
        using var reader = new ContextReader(stream);
        var record = reader.ReadNext()!;
        Assert.Equal("""{"name":"sleep","pid":42,"state":"stopped"}""", System.Text.Encoding.UTF8.GetString(record.Metadata));
        Assert.Equal(new SampleMetadata("sleep", 42, SampleState.Stopped), record.GetMetadata<SampleMetadata>());
        var bad = Assert.Throws<ContextFormatException>(() => record.GetMetadata<int[]>());
        Assert.Equal(ContextFormatError.Corrupt, bad.Error);
    }

    [Fact]
    public void SkippingBySeekingStillYieldsTheStoredChecksum()
    {
        var records = ContextFiles.Small();
        using var reader = new ContextReader(new MemoryStream(ContextFiles.Build(records)));
        reader.ReadNext();
        var pages = reader.ReadNext()!;
        reader.SkipData(verify: false);
        Assert.True(pages.DataChecksumKnown);
        Assert.Equal(XxHash3.HashToUInt64(records[1].Data!), pages.DataChecksum);
        Assert.Equal(RecordKind.Thread, reader.ReadNext()!.Kind);
        Assert.Null(reader.ReadNext());
    }

    [Fact]
    public void LayoutMatchesTheDocument()
    {
        byte[] file = ContextFiles.Build(ContextFiles.Small());
        var span = file.AsSpan();

        Assert.Equal(FormatConstants.Magic.ToArray(), span[..8].ToArray());
        Assert.Equal(new byte[] { 0x89, (byte)'C', (byte)'R', (byte)'C', (byte)'K', (byte)'P', (byte)'T', (byte)'\n' }, span[..8].ToArray());
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(span[8..]));
        Assert.Equal(3, BinaryPrimitives.ReadUInt16LittleEndian(span[10..]));
        Assert.Equal(64u, BinaryPrimitives.ReadUInt32LittleEndian(span[12..]));
        // data aligned (bit 0), exact state (bit 16), raw data (bit 17)
        Assert.Equal(0x0003_0001u, BinaryPrimitives.ReadUInt32LittleEndian(span[16..]));
        Assert.Equal(4096u, BinaryPrimitives.ReadUInt32LittleEndian(span[20..]));
        Assert.True(span[24..56].IndexOfAnyExcept((byte)0) < 0);
        Assert.Equal(XxHash3.HashToUInt64(span[..56]), BinaryPrimitives.ReadUInt64LittleEndian(span[56..]));

        var record = span[64..];
        Assert.Equal(new byte[] { 0x89, (byte)'R', (byte)'E', (byte)'C' }, record[..4].ToArray());
        Assert.Equal((uint)RecordKind.Image, BinaryPrimitives.ReadUInt32LittleEndian(record[4..]));
        Assert.Equal((uint)RecordFlags.Critical, BinaryPrimitives.ReadUInt32LittleEndian(record[8..]));
        ulong metadataLength = BinaryPrimitives.ReadUInt64LittleEndian(record[16..]);
        Assert.Equal(0ul, BinaryPrimitives.ReadUInt64LittleEndian(record[24..]));
        Assert.Equal(0ul, BinaryPrimitives.ReadUInt64LittleEndian(record[32..]));
        Assert.Equal(XxHash3.HashToUInt64(record.Slice(56, (int)metadataLength)), BinaryPrimitives.ReadUInt64LittleEndian(record[40..]));
        Assert.Equal(XxHash3.HashToUInt64(record[..48]), BinaryPrimitives.ReadUInt64LittleEndian(record[48..]));
        Assert.Equal(0x2D06800538D394C2ul, BinaryPrimitives.ReadUInt64LittleEndian(record[(56 + (int)metadataLength)..]));

        // The End record closes the file: header, {"recordCount":3,"totalBytes":N} (N = where the End record starts), trailer.
        int json = file.AsSpan().LastIndexOf("{\"recordCount\""u8);
        int endStart = json - FormatConstants.RecordHeaderLength;
        Assert.Equal((uint)RecordKind.End, BinaryPrimitives.ReadUInt32LittleEndian(span[(endStart + 4)..]));
        Assert.Equal($$"""{"recordCount":3,"totalBytes":{{endStart}}}""", System.Text.Encoding.UTF8.GetString(file, json, file.Length - 8 - json));
    }
}
