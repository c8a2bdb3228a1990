using System.IO.Hashing;
using System.Text.Json;

namespace CrCheckpoint.Engine.Format;

/// <summary>
/// Writes a context file front to back. It never seeks and never reads the destination back, so the destination
/// may be a pipe or a socket. A file is complete only after <see cref="Finish"/>; disposing without it leaves a file
/// that every reader refuses as truncated, which is the intended outcome of a checkpoint that failed midway.
/// </summary>
public sealed class ContextWriter : IDisposable
{
    // Small pieces (headers, metadata, padding, trailers) are gathered here and written with the next bulk write,
    // so a pipe sees few large writes instead of many small ones. Data never passes through it.
    private const int PendingCapacity = 64 * 1024;

    private static readonly byte[] Zeros = new byte[FormatConstants.DataAlignment];

    internal static readonly ulong EmptyDataChecksum = XxHash3.HashToUInt64(ReadOnlySpan<byte>.Empty);

    private readonly Stream _destination;
    private readonly bool _leaveOpen;
    private readonly byte[] _pending = new byte[PendingCapacity];
    private readonly StreamingXxHash3 _dataHash = new();
    private readonly RawDataSink _rawData = new();
    private int _pendingLength;
    private long _bytesWritten;
    private DataRecordWriter? _openRecord;
    private bool _finished;
    private bool _faulted;
    private bool _disposed;

    public ContextWriter(Stream destination, ContextWriterOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if (!destination.CanWrite)
            throw new ArgumentException("The destination stream cannot be written.", nameof(destination));
        options ??= new ContextWriterOptions();
        _destination = destination;
        _leaveOpen = options.LeaveOpen;
        DataAligned = options.AlignData;

        Span<byte> header = stackalloc byte[FormatConstants.FileHeaderLength];
        FileHeader.Encode(header,
            FileFlags.ExactState | FileFlags.RawData | (DataAligned ? FileFlags.DataAligned : FileFlags.None),
            DataAligned ? (uint)FormatConstants.DataAlignment : 0u);
        Append(header);
        // The header goes out at once so that a reader on the other end of a pipe can check the file right away.
        FlushPending();
    }

    /// <summary>Bytes of the file written so far; also the offset at which the next record starts.</summary>
    public long BytesWritten => _bytesWritten;

    /// <summary>Records written so far, not counting the End record.</summary>
    public int RecordCount { get; private set; }

    /// <summary>Whether record data is padded to start on multiples of <see cref="FormatConstants.DataAlignment"/>.</summary>
    public bool DataAligned { get; }

    /// <summary>Whether <see cref="Finish"/> has written the End record.</summary>
    public bool IsFinished => _finished;

    /// <summary>Writes a record without data.</summary>
    public void WriteRecord(RecordKind kind, ReadOnlySpan<byte> metadata, RecordFlags flags = RecordFlags.Critical)
    {
        CheckWritable();
        CheckKind(kind);
        CheckFlags(flags);
        CheckMetadata(metadata);
        try
        {
            WriteHeaderAndMetadata(kind, metadata, 0, flags);
            WriteTrailer(EmptyDataChecksum);
        }
        catch
        {
            _faulted = true;
            throw;
        }
        RecordCount++;
    }

    /// <summary>
    /// Writes a record whose metadata is <paramref name="metadata"/> as JSON. The byte arrays in it become the record's
    /// data, raw and back to back, the JSON holding a reference to each (<see cref="RecordFlags.RawData"/>); a record
    /// whose metadata has none has no data.
    /// </summary>
    /// <remarks>A <c>byte[]</c> or <c>ReadOnlyMemory&lt;byte&gt;</c> is taken as the metadata bytes themselves (C# picks this overload for arrays).</remarks>
    public void WriteRecord<T>(RecordKind kind, T metadata, RecordFlags flags = RecordFlags.Critical)
    {
        if (AsMetadataBytes(metadata) is { } bytes)
        {
            WriteRecord(kind, bytes.Span, flags);
            return;
        }
        CheckWritable();
        CheckKind(kind);
        CheckFlags(flags);
        try
        {
            byte[] json = Serialize(metadata);
            if (!_rawData.Any)
            {
                WriteRecord(kind, json.AsSpan(), flags);
                return;
            }
            CheckMetadata(json);
            if (_rawData.Length > FormatConstants.MaxMetadataLength)
                throw new ArgumentException(
                    $"The byte arrays of a {kind} record's metadata are {_rawData.Length} bytes; the format allows at most {FormatConstants.MaxMetadataLength}.",
                    nameof(metadata));
            WriteRawDataRecord(kind, json, flags | RecordFlags.RawData);
        }
        finally
        {
            // The sink holds the caller's arrays; they are not kept alive past the record.
            _rawData.Clear();
        }
        RecordCount++;
    }

    private void WriteRawDataRecord(RecordKind kind, byte[] json, RecordFlags flags)
    {
        try
        {
            WriteHeaderAndMetadata(kind, json, _rawData.Length, flags);
            _dataHash.Reset();
            foreach (var part in _rawData.Parts)
            {
                _dataHash.Append(part);
                Append(part);
            }
            WriteTrailer(_dataHash.GetCurrentHashAsUInt64());
        }
        catch
        {
            _faulted = true;
            throw;
        }
    }

    /// <summary>
    /// Starts a record with exactly <paramref name="dataLength"/> bytes of data, to be given to the returned
    /// writer's <see cref="DataRecordWriter.Write"/> and closed with <see cref="DataRecordWriter.Complete"/>.
    /// Nothing else may be written until then.
    /// </summary>
    public DataRecordWriter BeginDataRecord(RecordKind kind, ReadOnlySpan<byte> metadata, long dataLength, RecordFlags flags = RecordFlags.Critical)
    {
        CheckWritable();
        CheckKind(kind);
        CheckFlags(flags);
        CheckMetadata(metadata);
        ArgumentOutOfRangeException.ThrowIfNegative(dataLength);
        long dataOffset;
        try
        {
            dataOffset = WriteHeaderAndMetadata(kind, metadata, dataLength, flags);
        }
        catch
        {
            _faulted = true;
            throw;
        }
        _dataHash.Reset();
        _openRecord = new DataRecordWriter(this, dataLength, dataOffset);
        return _openRecord;
    }

    /// <summary>Starts a record with data whose metadata is <paramref name="metadata"/> as JSON.</summary>
    /// <remarks>
    /// A <c>byte[]</c> or <c>ReadOnlyMemory&lt;byte&gt;</c> is taken as the metadata bytes themselves (C# picks this
    /// overload for arrays). The metadata must hold no byte arrays: the data part is the caller's.
    /// </remarks>
    public DataRecordWriter BeginDataRecord<T>(RecordKind kind, T metadata, long dataLength, RecordFlags flags = RecordFlags.Critical)
    {
        if (AsMetadataBytes(metadata) is { } bytes)
            return BeginDataRecord(kind, bytes.Span, dataLength, flags);
        CheckWritable();
        byte[] json;
        try
        {
            json = Serialize(metadata);
            if (_rawData.Any)
                throw new ArgumentException(
                    $"The metadata of a {kind} record with data of its own holds byte arrays; put them in the record's data.", nameof(metadata));
        }
        finally
        {
            _rawData.Clear();
        }
        return BeginDataRecord(kind, json.AsSpan(), dataLength, flags);
    }

    /// <summary>Writes the End record and flushes the destination. Nothing can be written afterwards.</summary>
    public void Finish()
    {
        CheckWritable();
        var end = new EndRecordMetadata { RecordCount = RecordCount, TotalBytes = _bytesWritten };
        byte[] metadata = JsonSerializer.SerializeToUtf8Bytes(end, ContextJson.Options);
        try
        {
            WriteHeaderAndMetadata(RecordKind.End, metadata, 0, RecordFlags.Critical);
            WriteTrailer(EmptyDataChecksum);
            FlushPending();
            _destination.Flush();
        }
        catch
        {
            _faulted = true;
            throw;
        }
        _finished = true;
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        try
        {
            // What was written should reach the file even when the checkpoint failed, to help finding out why;
            // the missing End record already marks it as incomplete.
            if (!_faulted)
                FlushPending();
        }
        catch (IOException)
        {
            // Disposal runs while another exception is often on its way out; that one says more than this one.
        }
        finally
        {
            if (!_leaveOpen)
                _destination.Dispose();
        }
    }

    // Serializing a byte array would silently store it as a base64 JSON string; nobody passing bytes means that.
    private static ReadOnlyMemory<byte>? AsMetadataBytes<T>(T metadata)
    {
        if (metadata is byte[] bytes) return bytes;
        if (metadata is ReadOnlyMemory<byte> memory) return memory;
        if (metadata is Memory<byte> writable) return writable;
        return null;
    }

    private byte[] Serialize<T>(T metadata)
    {
        _rawData.Clear();
        using (RawDataConverter.Writing(_rawData))
            return JsonSerializer.SerializeToUtf8Bytes(metadata, ContextJson.Options);
    }

    internal void WriteData(DataRecordWriter record, ReadOnlySpan<byte> chunk)
    {
        if (!ReferenceEquals(record, _openRecord) || _disposed || _faulted)
            throw new InvalidOperationException("This data record is no longer open for writing.");
        _dataHash.Append(chunk);
        try
        {
            FlushPending();
            _destination.Write(chunk);
        }
        catch
        {
            _faulted = true;
            throw;
        }
        _bytesWritten += chunk.Length;
    }

    internal ulong CompleteData(DataRecordWriter record)
    {
        if (!ReferenceEquals(record, _openRecord) || _disposed || _faulted)
            throw new InvalidOperationException("This data record is no longer open for writing.");
        ulong checksum = _dataHash.GetCurrentHashAsUInt64();
        try
        {
            WriteTrailer(checksum);
        }
        catch
        {
            _faulted = true;
            throw;
        }
        _openRecord = null;
        RecordCount++;
        return checksum;
    }

    private long WriteHeaderAndMetadata(RecordKind kind, ReadOnlySpan<byte> metadata, long dataLength, RecordFlags flags)
    {
        long dataStart = _bytesWritten + FormatConstants.RecordHeaderLength + metadata.Length;
        // Raw data of metadata is read into memory, never mapped: aligning it would only waste up to 4 KiB a record.
        uint padding = DataAligned && dataLength > 0 && (flags & RecordFlags.RawData) == 0 ? Padding(dataStart) : 0;

        var header = new RecordHeader(kind, flags, padding, (ulong)metadata.Length, (ulong)dataLength,
            (ulong)RecordCount, XxHash3.HashToUInt64(metadata));
        Span<byte> encoded = stackalloc byte[FormatConstants.RecordHeaderLength];
        header.Encode(encoded);
        Append(encoded);
        Append(metadata);
        Append(Zeros.AsSpan(0, (int)padding));
        return dataStart + padding;
    }

    internal static uint Padding(long offset, int alignment = FormatConstants.DataAlignment) =>
        (uint)((alignment - offset % alignment) % alignment);

    private void WriteTrailer(ulong dataChecksum)
    {
        Span<byte> trailer = stackalloc byte[FormatConstants.RecordTrailerLength];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(trailer, dataChecksum);
        Append(trailer);
    }

    private void Append(ReadOnlySpan<byte> bytes)
    {
        if (_pendingLength + bytes.Length > _pending.Length)
        {
            FlushPending();
            if (bytes.Length > _pending.Length)
            {
                _destination.Write(bytes);
                _bytesWritten += bytes.Length;
                return;
            }
        }
        bytes.CopyTo(_pending.AsSpan(_pendingLength));
        _pendingLength += bytes.Length;
        _bytesWritten += bytes.Length;
    }

    private void FlushPending()
    {
        if (_pendingLength == 0)
            return;
        _destination.Write(_pending, 0, _pendingLength);
        _pendingLength = 0;
    }

    private void CheckWritable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_faulted)
            throw new InvalidOperationException("An earlier write to the context file failed; the file is incomplete and cannot be continued.");
        if (_finished)
            throw new InvalidOperationException("The context file is finished; nothing can be written after the End record.");
        if (_openRecord is not null)
            throw new InvalidOperationException("A data record is still open; write all its data and call Complete() first.");
    }

    private static void CheckMetadata(ReadOnlySpan<byte> metadata)
    {
        if (metadata.Length > FormatConstants.MaxMetadataLength)
            throw new ArgumentException(
                $"Record metadata is {metadata.Length} bytes; the format allows at most {FormatConstants.MaxMetadataLength}. Put bulk content in the record's data.",
                nameof(metadata));
    }

    private static void CheckFlags(RecordFlags flags)
    {
        if ((flags & RecordFlags.RawData) != 0)
            throw new ArgumentException("RecordFlags.RawData is set by the writer itself, for metadata with byte arrays.", nameof(flags));
    }

    private static void CheckKind(RecordKind kind)
    {
        if (kind == RecordKind.End)
            throw new ArgumentException("The End record is written by Finish().", nameof(kind));
        if (kind == 0 || (uint)kind >= 0x8000_0000)
            throw new ArgumentOutOfRangeException(nameof(kind), kind, "Record kinds are 1 to 0x7FFFFFFE.");
    }
}
