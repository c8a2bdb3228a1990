using System.Buffers.Binary;
using System.Text;
using CrCheckpoint.Engine.Format;
using CrCheckpoint.Engine.Schema;

namespace CrCheckpoint.Engine.Tests.Format;

/// <summary>Byte arrays of metadata travel as raw data beside it (since 1.3); files before that hold base64.</summary>
public class RawDataTests
{
    private static ThreadRecord Thread() => new()
    {
        Pid = 10, Tid = 11, Name = "worker",
        Registers = [1, 2, 3],
        ExtendedState = ContextFiles.Bytes(832, seed: 5),
        ExtendedStateSize = 2696,
        PendingSignals = [ContextFiles.Bytes(128, seed: 6), ContextFiles.Bytes(128, seed: 7)],
        Sandbox = new SeccompRecord { Mode = 2, Filters = [new SeccompFilterRecord { Flags = 1, Program = ContextFiles.Bytes(8 * 9, seed: 8) }] },
        Scheduling = new SchedulingRecord { Affinity = [0xff, 0, 0, 0, 0, 0, 0, 0] },
    };

    private static FileTableRecord Table() => new()
    {
        Pid = 10,
        Descriptors =
        [
            new FileDescriptorRecord
            {
                Fd = 4, Kind = FileDescriptorKind.InetSocket,
                Inet = new InetSocketRecord
                {
                    Family = 2, Type = 1,
                    Tcp = new TcpConnectionRecord { SendQueue = ContextFiles.Bytes(70000, seed: 9), ReceiveQueue = [], Window = [1, 2, 3, 4, 5] },
                },
                SocketOptions = new SocketOptionsRecord { Values = [new SocketOptionValue { Name = "SO_MARK", Level = 1, Option = 36, Value = [7, 0, 0, 0] }] },
            },
        ],
    };

    private static byte[] Write(Action<ContextWriter> write, bool align = true)
    {
        var stream = new MemoryStream();
        using (var writer = new ContextWriter(stream, new ContextWriterOptions { LeaveOpen = true, AlignData = align }))
        {
            write(writer);
            writer.Finish();
        }
        return stream.ToArray();
    }

    private static void AssertSameThread(ThreadRecord expected, ThreadRecord actual)
    {
        Assert.Equal(expected.ExtendedState, actual.ExtendedState);
        Assert.Equal(expected.ExtendedStateSize, actual.ExtendedStateSize);
        Assert.Equal(expected.PendingSignals, actual.PendingSignals);
        Assert.Equal(expected.Sandbox!.Filters[0].Program, actual.Sandbox!.Filters[0].Program);
        Assert.Equal(expected.Scheduling!.Affinity, actual.Scheduling!.Affinity);
        Assert.Equal(expected.Registers, actual.Registers);
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void ByteArraysRoundTripAsRawData(bool align, bool seekable)
    {
        var thread = Thread();
        var table = Table();
        byte[] file = Write(w =>
        {
            w.WriteRecord(RecordKind.Thread, thread);
            w.WriteRecord(RecordKind.FileTable, table);
        }, align);

        Stream source = new MemoryStream(file);
        if (!seekable) source = new NonSeekableStream(source);
        using var reader = new ContextReader(source) { Verify = false };
        Assert.True(reader.HasRawData);
        Assert.Equal(FormatConstants.MinorVersion, reader.FormatMinor);
        var first = reader.ReadNext()!;
        var second = reader.ReadNext()!;
        Assert.Null(reader.ReadNext());

        Assert.Equal(RecordFlags.Critical | RecordFlags.RawData, first.Flags);
        Assert.Equal(832 + 256 + 72 + 8, first.DataLength);
        // Raw data is read with the metadata, not mapped: never padded.
        if (seekable) Assert.Equal(first.RecordOffset + FormatConstants.RecordHeaderLength + first.Metadata.Length, first.DataOffset);
        Assert.Equal(second.RecordOffset, first.RecordOffset + FormatConstants.RecordHeaderLength + first.Metadata.Length + first.DataLength + FormatConstants.RecordTrailerLength);
        string json = Encoding.UTF8.GetString(first.Metadata);
        Assert.Contains("\"extendedState\":{\"offset\":0,\"length\":832}", json);
        Assert.DoesNotContain(Convert.ToBase64String(thread.ExtendedState), json);

        AssertSameThread(thread, first.GetMetadata<ThreadRecord>());
        var tcp = second.GetMetadata<FileTableRecord>().Descriptors[0];
        Assert.Equal(table.Descriptors[0].Inet!.Tcp!.SendQueue, tcp.Inet!.Tcp!.SendQueue);
        Assert.Empty(tcp.Inet.Tcp.ReceiveQueue);
        Assert.Equal([7, 0, 0, 0], tcp.SocketOptions!.Values[0].Value);
    }

    [Fact]
    public void ARecordWithoutByteArraysHasNoData()
    {
        byte[] file = Write(w => w.WriteRecord(RecordKind.Image, new ImageRecord { Hostname = "h" }));
        using var reader = new ContextReader(new MemoryStream(file));
        var image = reader.ReadNext()!;
        Assert.Equal(RecordFlags.Critical, image.Flags);
        Assert.Equal(0, image.DataLength);
    }

    /// <summary>Empty arrays are references too (length 0): the record is flagged, with no bytes of data.</summary>
    [Fact]
    public void EmptyByteArraysAreEmptyReferences()
    {
        var table = new FileTableRecord
        {
            Descriptors = [new FileDescriptorRecord { Kind = FileDescriptorKind.InetSocket, Inet = new InetSocketRecord { Tcp = new TcpConnectionRecord() } }],
        };
        byte[] file = Write(w => w.WriteRecord(RecordKind.FileTable, table));
        using var reader = new ContextReader(new MemoryStream(file));
        var record = reader.ReadNext()!;
        Assert.Equal(RecordFlags.Critical | RecordFlags.RawData, record.Flags);
        Assert.Equal(0, record.DataLength);
        var tcp = record.GetMetadata<FileTableRecord>().Descriptors[0].Inet!.Tcp!;
        Assert.Empty(tcp.SendQueue);
        Assert.Empty(tcp.ReceiveQueue);
        Assert.Null(reader.ReadNext());
    }

    [Fact]
    public void DamagedRawDataIsCorruptEvenWithoutVerification()
    {
        byte[] file = Write(w => w.WriteRecord(RecordKind.Thread, Thread()));
        long dataOffset;
        using (var reader = new ContextReader(new MemoryStream(file)))
            dataOffset = reader.ReadNext()!.DataOffset;
        file[dataOffset + 100] ^= 1;
        Assert.Equal(ContextFormatError.Corrupt, ContextFiles.Refused(file, verify: false).Error);
    }

    [Fact]
    public void AReferenceOutsideTheRawDataIsCorrupt()
    {
        byte[] file = Write(w => w.WriteRecord(RecordKind.Thread, Thread()));
        string json = Encoding.UTF8.GetString(RecordMetadata(file));
        var bad = ContextFiles.Build([new(RecordKind.Thread, RecordFlags.Critical, Encoding.UTF8.GetBytes(json.Replace("\"length\":832", "\"length\":99999")), null)]);

        using var reader = new ContextReader(new MemoryStream(bad));
        var record = reader.ReadNext()!;
        Assert.Equal(ContextFormatError.Corrupt, Assert.Throws<ContextFormatException>(() => record.GetMetadata<ThreadRecord>()).Error);
    }

    [Fact]
    public void Base64IsCorruptInAFileWithRawData()
    {
        var json = """{"pid":1,"tid":1,"extendedState":"AAEC"}"""u8.ToArray();
        using var reader = new ContextReader(new MemoryStream(ContextFiles.Build([new(RecordKind.Thread, RecordFlags.Critical, json, null)])));
        var record = reader.ReadNext()!;
        Assert.Equal(ContextFormatError.Corrupt, Assert.Throws<ContextFormatException>(() => record.GetMetadata<ThreadRecord>()).Error);
    }

    [Fact]
    public void RawDataFlagIsTheWritersOwn()
    {
        using var writer = new ContextWriter(new MemoryStream());
        Assert.Throws<ArgumentException>(() => writer.WriteRecord(RecordKind.Thread, "{}"u8, RecordFlags.Critical | RecordFlags.RawData));
        Assert.Throws<ArgumentException>(() => writer.BeginDataRecord(RecordKind.MemoryPages, "{}"u8, 1, RecordFlags.RawData));
    }

    [Fact]
    public void ADataRecordsMetadataMustHoldNoByteArrays()
    {
        using var writer = new ContextWriter(new MemoryStream());
        Assert.Throws<ArgumentException>(() => writer.BeginDataRecord(RecordKind.PipeData, Thread(), 10));
        // Refused before anything was written: the writer goes on.
        writer.WriteRecord(RecordKind.Thread, Thread());
        writer.Finish();
    }

    /// <summary>A file as 1.2 wrote it: minor 2, no raw-data flag, byte arrays as base64 strings inside the JSON.</summary>
    [Fact]
    public void A12FileWithBase64ByteArraysReadsAsBefore()
    {
        var thread = Thread();
        string b64(byte[] b) => Convert.ToBase64String(b);
        var threadJson = $$"""
            {"pid":10,"tid":11,"name":"worker","registers":[1,2,3],"extendedState":"{{b64(thread.ExtendedState)}}","extendedStateSize":2696,
            "blockedSignals":0,"pendingSignals":["{{b64(thread.PendingSignals[0])}}","{{b64(thread.PendingSignals[1])}}"],
            "sandbox":{"noNewPrivileges":false,"mode":2,"filters":[{"flags":1,"program":"{{b64(thread.Sandbox!.Filters[0].Program)}}"}]},
            "scheduling":{"policy":0,"affinity":"/wAAAAAAAAA="},"parentDeathSignal":0}
            """.ReplaceLineEndings("");
        var queue = ContextFiles.Bytes(3000, seed: 12);
        var tableJson = $$$"""
            {"pid":10,"descriptors":[{"fd":4,"kind":"inetSocket","inet":{"family":2,"type":1,"tcp":{"sendQueue":"{{{b64(queue)}}}","receiveQueue":"","window":[1,2,3,4,5]}},
            "socketOptions":{"values":[{"name":"SO_MARK","level":1,"option":36,"value":"BwAAAA=="}],"filter":"AQIDBAUGBwg="}}]}
            """.ReplaceLineEndings("");
        var processJson = """{"pid":10,"memoryLayout":{"auxv":"IQAAAAAAAAA="},"signals":{"sharedPending":["AQAAAA=="]}}"""u8.ToArray();
        byte[] file = ContextFiles.Build(
        [
            new(RecordKind.Process, RecordFlags.Critical, processJson, null),
            new(RecordKind.Thread, RecordFlags.Critical, Encoding.UTF8.GetBytes(threadJson), null),
            new(RecordKind.FileTable, RecordFlags.Critical, Encoding.UTF8.GetBytes(tableJson), null),
        ]);
        MakeOld(file, minor: 2, FileFlags.ExactState | FileFlags.DataAligned);

        using var reader = new ContextReader(new MemoryStream(file));
        Assert.False(reader.HasRawData);
        Assert.Equal(2, reader.FormatMinor);
        var process = reader.ReadNext()!.GetMetadata<ProcessRecord>();
        Assert.Equal([0x21, 0, 0, 0, 0, 0, 0, 0], process.MemoryLayout.Auxv);
        Assert.Equal([1, 0, 0, 0], process.Signals.SharedPending[0]);
        AssertSameThread(thread, reader.ReadNext()!.GetMetadata<ThreadRecord>());
        var d = reader.ReadNext()!.GetMetadata<FileTableRecord>().Descriptors[0];
        Assert.Equal(queue, d.Inet!.Tcp!.SendQueue);
        Assert.Empty(d.Inet.Tcp.ReceiveQueue);
        Assert.Equal([7, 0, 0, 0], d.SocketOptions!.Values[0].Value);
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, 8], d.SocketOptions.Filter);
        Assert.Null(reader.ReadNext());
    }

    /// <summary>Files before 1.3 never set the record flag; if one did, 1.2 readers ignored it, and so does this one there.</summary>
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void TheRecordFlagMeansNothingInOlderFiles(int minor)
    {
        var pages = ContextFiles.Bytes(5000, seed: 3);
        byte[] file = ContextFiles.Build([new(RecordKind.MemoryPages, RecordFlags.Critical, "{}"u8.ToArray(), pages)]);
        // Set RecordFlags.RawData on the record (its header is right after the file header) and reseal it.
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(FormatConstants.FileHeaderLength + 8), (uint)(RecordFlags.Critical | RecordFlags.RawData));
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(FormatConstants.FileHeaderLength + 48),
            System.IO.Hashing.XxHash3.HashToUInt64(file.AsSpan(FormatConstants.FileHeaderLength, 48)));
        MakeOld(file, minor, minor == 2 ? FileFlags.ExactState | FileFlags.DataAligned : FileFlags.DataAligned);

        var read = ContextFiles.ReadAll(new MemoryStream(file));
        Assert.Equal(pages, read[0].Data);
        Assert.Equal(FormatConstants.DataAlignment, read[0].Info.DataOffset);
    }

    /// <summary>A 1.2 reader knows only the exact-state flag: it refuses a file with raw data as too new, not as damaged.</summary>
    [Fact]
    public void AReaderThatDoesNotKnowRawDataRefusesTheFile()
    {
        byte[] file = Write(w => w.WriteRecord(RecordKind.Thread, Thread()));
        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(16));
        Assert.Equal((uint)FileFlags.RawData, flags & (uint)FileFlags.RawData);
        Assert.True((flags & (uint)FileFlags.IncompatibleMask & ~(uint)FileFlags.ExactState) != 0,
            "what a 1.2 reader (which knows only ExactState among the incompatible flags) refuses");
    }

    private static byte[] RecordMetadata(byte[] file)
    {
        using var reader = new ContextReader(new MemoryStream(file));
        return reader.ReadNext()!.Metadata;
    }

    internal static void MakeOld(byte[] file, int minor, FileFlags flags)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(10), (ushort)minor);
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(16), (uint)flags);
        ContextFiles.Reseal(file);
    }
}
