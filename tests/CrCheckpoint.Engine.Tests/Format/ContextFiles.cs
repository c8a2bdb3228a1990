using CrCheckpoint.Engine.Format;

namespace CrCheckpoint.Engine.Tests.Format;

public enum SampleState { Running, Stopped }

public sealed record SampleMetadata(string Name, int Pid, SampleState State);

/// <summary>One record as the tests expect it: what was written, or what was read back.</summary>
public sealed record SampleRecord(RecordKind Kind, RecordFlags Flags, byte[] Metadata, byte[]? Data);

/// <summary>Builds small context files and reads them back whole.</summary>
internal static class ContextFiles
{
    /// <summary>Every kind version 1 defines, with and without data, with data sizes around the alignment.</summary>
    public static IReadOnlyList<SampleRecord> AllKinds()
    {
        var records = new List<SampleRecord>();
        int i = 0;
        foreach (var kind in new[] { RecordKind.Image, RecordKind.Process, RecordKind.Thread, RecordKind.MemoryMap, RecordKind.MemoryPages, RecordKind.FileTable, RecordKind.FileContent })
        {
            records.Add(new SampleRecord(kind, RecordFlags.Critical, Json(new SampleMetadata($"{kind}-nodata", 100 + i, SampleState.Running)), null));
            records.Add(new SampleRecord(kind, RecordFlags.Critical, Json(new SampleMetadata($"{kind}-data", 200 + i, SampleState.Stopped)), Bytes(37 * i + 1, seed: i)));
            i++;
        }
        records.Add(new SampleRecord(RecordKind.MemoryPages, RecordFlags.Critical, "{}"u8.ToArray(), Bytes(2 * FormatConstants.DataAlignment, seed: 99)));
        records.Add(new SampleRecord(RecordKind.FileContent, RecordFlags.Critical, [], Bytes(FormatConstants.DataAlignment + 1, seed: 98)));
        records.Add(new SampleRecord(RecordKind.FileContent, RecordFlags.Critical, "{}"u8.ToArray(), []));
        return records;
    }

    /// <summary>A small file: few records, little data, so that every byte of it can be damaged in a test.</summary>
    public static IReadOnlyList<SampleRecord> Small() =>
    [
        new(RecordKind.Image, RecordFlags.Critical, Json(new SampleMetadata("image", 1, SampleState.Running)), null),
        new(RecordKind.MemoryPages, RecordFlags.Critical, Json(new SampleMetadata("pages", 2, SampleState.Stopped)), Bytes(300, seed: 1)),
        new(RecordKind.Thread, RecordFlags.Critical, Json(new SampleMetadata("thread", 3, SampleState.Stopped)), Bytes(5, seed: 2)),
    ];

    /// <summary>Recomputes the file header checksum, so that a test can change header fields without it counting as damage.</summary>
    public static byte[] Reseal(byte[] file)
    {
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(56), System.IO.Hashing.XxHash3.HashToUInt64(file.AsSpan(0, 56)));
        return file;
    }

    public static byte[] Json<T>(T value) => System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(value, ContextJson.Options);

    public static byte[] Bytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public static void Write(ContextWriter writer, IEnumerable<SampleRecord> records, int chunk = 100)
    {
        foreach (var r in records)
        {
            if (r.Data is null)
            {
                writer.WriteRecord(r.Kind, r.Metadata, r.Flags);
                continue;
            }
            var data = writer.BeginDataRecord(r.Kind, r.Metadata, r.Data.Length, r.Flags);
            for (int offset = 0; offset < r.Data.Length; offset += chunk)
                data.Write(r.Data.AsSpan(offset, Math.Min(chunk, r.Data.Length - offset)));
            data.Complete();
        }
    }

    public static byte[] Build(IEnumerable<SampleRecord> records, bool align = true, bool finish = true)
    {
        var stream = new MemoryStream();
        using (var writer = new ContextWriter(stream, new ContextWriterOptions { AlignData = align, LeaveOpen = true }))
        {
            Write(writer, records);
            if (finish)
                writer.Finish();
        }
        return stream.ToArray();
    }

    /// <summary>
    /// Reads every record, reading the data of records with an even sequence number and leaving the rest for the
    /// reader to skip, so both ways are exercised. Data left unread comes back as null.
    /// </summary>
    public static List<(RecordInfo Info, byte[]? Data)> ReadAll(Stream source, bool verify = true)
    {
        var result = new List<(RecordInfo, byte[]?)>();
        using var reader = new ContextReader(source) { Verify = verify };
        while (reader.ReadNext() is { } record)
        {
            byte[]? data = null;
            if (record.Sequence % 2 == 0)
            {
                data = new byte[record.DataLength];
                for (int offset = 0; offset < data.Length; offset += 64)
                    reader.ReadData(data.AsSpan(offset, Math.Min(64, data.Length - offset)));
                Assert.True(record.DataChecksumKnown);
            }
            result.Add((record, data));
        }
        Assert.True(reader.IsComplete);
        Assert.Null(reader.ReadNext());
        return result;
    }

    public static ContextFormatException Refused(byte[] file, bool verify = true, bool seekable = true) =>
        Refused(file, file.Length, verify, seekable);

    /// <summary>Reads the first <paramref name="length"/> bytes of <paramref name="file"/> and returns the reader's refusal.</summary>
    public static ContextFormatException Refused(byte[] file, int length, bool verify = true, bool seekable = true)
    {
        Stream stream = new MemoryStream(file, 0, length, writable: false);
        if (!seekable)
            stream = new NonSeekableStream(stream);
        return Assert.Throws<ContextFormatException>(() => ReadAll(stream, verify));
    }
}
