using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using System.Text.Json;

namespace CrCheckpoint.Engine.Format;

/// <summary>
/// Reads a context file front to back, verifying every checksum it passes. Works on pipes; on a seekable stream it can
/// also skip data by seeking. Any problem with the file surfaces as a <see cref="ContextFormatException"/>.
/// </summary>
/// <remarks>
/// Use: <c>while (reader.ReadNext() is { } record) { ... reader.ReadData(...) ... }</c>. Data the caller leaves
/// unread is skipped by the next <see cref="ReadNext"/>. <see cref="ReadNext"/> returns null only after the End
/// record has been read and checked, and after the stream has been confirmed to end there: a caller that reached null
/// has a complete, intact file.
/// </remarks>
public sealed class ContextReader : IDisposable
{
    private const int SkipBufferLength = 1024 * 1024;
    private const int MaxAlignment = 1024 * 1024;

    private readonly Stream _source;
    private readonly bool _leaveOpen;
    private readonly string _name;
    private readonly bool _canSeek;
    private readonly long _origin;
    private readonly int _alignment;
    private readonly FileFlags _flags;
    private readonly StreamingXxHash3 _dataHash = new();
    private readonly byte[] _recordHeader = new byte[FormatConstants.RecordHeaderLength];

    // Counted here rather than asked of the stream, because pipes have no position.
    private long _position;
    private long _nextSequence;
    private RecordInfo? _current;
    private long _dataRemaining;
    private bool _dataHashed;
    private bool _trailerPending;
    private bool _ended;
    private ContextFormatException? _failure;
    private bool _disposed;

    /// <summary>Reads and validates the file header.</summary>
    /// <param name="source">The stream, positioned at the file header. It need not be seekable.</param>
    /// <param name="leaveOpen">Leave <paramref name="source"/> open when the reader is disposed (or when this constructor throws).</param>
    /// <param name="sourceName">Name that starts error messages (e.g. the path the user gave); defaults to the path of a <see cref="FileStream"/>.</param>
    /// <exception cref="ContextFormatException">The stream is not a context file this version can read.</exception>
    public ContextReader(Stream source, bool leaveOpen = false, string? sourceName = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (!source.CanRead)
            throw new ArgumentException("The source stream cannot be read.", nameof(source));
        _source = source;
        _leaveOpen = leaveOpen;
        _name = sourceName ?? (source is FileStream fs ? fs.Name : "The context stream");
        _canSeek = source.CanSeek;
        _origin = _canSeek ? source.Position : 0;
        try
        {
            (FormatMajor, FormatMinor, DataAligned, _alignment, _flags) = ReadFileHeader();
        }
        catch
        {
            if (!leaveOpen)
                source.Dispose();
            throw;
        }
    }

    public int FormatMajor { get; }

    public int FormatMinor { get; }

    /// <summary>Whether each record's data starts on a multiple of <see cref="Alignment"/> bytes from the start of the file.</summary>
    public bool DataAligned { get; }

    /// <summary>
    /// Whether the byte arrays of record metadata are raw data beside it (since 1.3); in older files they are base64
    /// strings. Either way <see cref="RecordInfo.GetMetadata{T}"/> gives them back as byte arrays.
    /// </summary>
    public bool HasRawData => (_flags & FileFlags.RawData) != 0;

    /// <summary>The data alignment the file declares (4096 for files this version writes); 0 when not aligned.</summary>
    public int Alignment => DataAligned ? _alignment : 0;

    /// <summary>
    /// Whether data the caller does not read is still read and checked against its checksum when skipped.
    /// When false, such data is skipped by seeking where the stream allows it. Default: true.
    /// </summary>
    public bool Verify { get; set; } = true;

    /// <summary>The record returned by the last <see cref="ReadNext"/>, or null.</summary>
    public RecordInfo? Current => _current;

    /// <summary>Bytes of the current record's data not yet read or skipped.</summary>
    public long DataRemaining => _current is null ? 0 : _dataRemaining;

    /// <summary>Whether the End record has been read: the file was complete and intact.</summary>
    public bool IsComplete => _ended;

    /// <summary>Records read so far, including skipped ones of unknown kinds, not counting the End record.</summary>
    public long RecordCount => _ended ? _nextSequence - 1 : _nextSequence;

    /// <summary>
    /// Moves to the next record, first skipping whatever data of the current one was not read. Records of unknown
    /// kinds are skipped when not critical. Returns null once the End record has been read and checked.
    /// </summary>
    public RecordInfo? ReadNext()
    {
        CheckUsable();
        if (_ended)
            return null;
        while (true)
        {
            FinishCurrent();
            var record = ReadRecordStart();
            if (record is null)
                return null;
            if (FormatConstants.IsKnownKind(record.Kind))
                return record;
            if ((record.Flags & RecordFlags.Critical) != 0)
                throw Fail(ContextFormatError.UnknownCriticalRecord, record.RecordOffset,
                    $"{_name} has a record of kind 0x{(uint)record.Kind:X} at byte {record.RecordOffset} that this version of CrCheckpoint does not know and must not skip: " +
                    $"it was written by a newer version (format {FormatMajor}.{FormatMinor}). Upgrade CrCheckpoint to restore it.");
        }
    }

    /// <summary>Reads the next <paramref name="destination"/>.Length bytes of the current record's data, hashing them.
    /// After the last byte the record's checksum is verified, so a damaged record throws here rather than later.</summary>
    public void ReadData(Span<byte> destination)
    {
        CheckUsable();
        if (_current is null)
            throw new InvalidOperationException("There is no current record; call ReadNext() first.");
        if (destination.Length > _dataRemaining)
            throw new ArgumentException(
                $"{destination.Length} bytes were asked for but only {_dataRemaining} of the record's data remain.", nameof(destination));
        ReadExact(destination);
        _dataHash.Append(destination);
        _dataRemaining -= destination.Length;
        if (_dataRemaining == 0 && _trailerPending)
            ReadTrailer();
    }

    /// <summary>
    /// Skips the rest of the current record's data. Without <paramref name="verify"/> a seekable stream is seeked and
    /// the trailer's checksum is taken as is; otherwise the data is read, hashed and checked.
    /// </summary>
    public void SkipData(bool verify)
    {
        CheckUsable();
        if (_current is null)
            throw new InvalidOperationException("There is no current record; call ReadNext() first.");
        if (!_trailerPending)
            return;
        if (!verify && _canSeek && _dataRemaining > 0)
        {
            long target = _source.Position + _dataRemaining;
            long length = _source.Length;
            if (target > length)
            {
                _position = length - _origin;
                throw Truncated(length);
            }
            _source.Seek(_dataRemaining, SeekOrigin.Current);
            _position += _dataRemaining;
            _dataRemaining = 0;
            _dataHashed = false;
            ReadTrailer();
            return;
        }

        byte[] buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(SkipBufferLength, Math.Max(_dataRemaining, 1)));
        try
        {
            while (_trailerPending)
            {
                int n = (int)Math.Min(buffer.Length, _dataRemaining);
                ReadData(buffer.AsSpan(0, n));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        if (!_leaveOpen)
            _source.Dispose();
    }

    private (int Major, int Minor, bool Aligned, int Alignment, FileFlags Flags) ReadFileHeader()
    {
        byte[] header = new byte[FileHeader.MaxLength];
        int got = _source.ReadAtLeast(header.AsSpan(0, FileHeader.FixedPrefixLength), FileHeader.FixedPrefixLength, throwOnEndOfStream: false);
        _position = got;
        int magicBytes = Math.Min(got, FormatConstants.Magic.Length);
        if (!header.AsSpan(0, magicBytes).SequenceEqual(FormatConstants.Magic[..magicBytes]))
            throw Fail(ContextFormatError.Foreign, _origin,
                $"{_name} is not a CrCheckpoint context file: it starts with {Describe(header.AsSpan(0, got))}. Check that the path names a file written by Checkpoint.");
        if (got == 0)
            throw Fail(ContextFormatError.Truncated, _origin,
                $"{_name} is empty: the checkpoint that should have written it did not start. Use another context file.");
        if (got < FileHeader.FixedPrefixLength)
            throw Truncated(_origin + got);

        int major = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(FileHeader.MajorOffset));
        int minor = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(FileHeader.MinorOffset));
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(FileHeader.LengthOffset));
        bool lengthPlausible = major == FormatConstants.MajorVersion
            ? length == FormatConstants.FileHeaderLength
            : length is >= FileHeader.MinLength and <= FileHeader.MaxLength;
        if (!lengthPlausible)
            throw Corrupt(_origin + FileHeader.LengthOffset, $"the file header claims a length of {length} bytes");

        ReadExact(header.AsSpan(FileHeader.FixedPrefixLength, (int)length - FileHeader.FixedPrefixLength));
        int checksumAt = (int)length - 8;
        if (BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(checksumAt)) != XxHash3.HashToUInt64(header.AsSpan(0, checksumAt)))
            throw Corrupt(_origin, "the file header's checksum does not match");

        if (major != FormatConstants.MajorVersion)
            throw Fail(ContextFormatError.UnsupportedVersion, _origin + FileHeader.MajorOffset, major > FormatConstants.MajorVersion
                ? $"{_name} is a context file of format version {major}.{minor}, written by a newer version of CrCheckpoint; this version reads format {FormatConstants.MajorVersion}.x only. Upgrade CrCheckpoint to restore it."
                : $"{_name} is a context file of format version {major}.{minor}, which no released version of CrCheckpoint reads; this version reads format {FormatConstants.MajorVersion}.x only.");

        var flags = (FileFlags)BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(FileHeader.FlagsOffset));
        var unknownIncompatible = flags & FileFlags.IncompatibleMask & ~FileFlags.KnownIncompatible;
        if (unknownIncompatible != 0)
            throw Fail(ContextFormatError.UnsupportedVersion, _origin + FileHeader.FlagsOffset,
                $"{_name} (format {major}.{minor}) uses features this version of CrCheckpoint does not have (header flags 0x{(uint)unknownIncompatible:X8}). Upgrade CrCheckpoint to restore it.");

        bool aligned = (flags & FileFlags.DataAligned) != 0;
        uint alignment = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(FileHeader.AlignmentOffset));
        if (aligned && (alignment < FormatConstants.DataAlignment || alignment > MaxAlignment || !uint.IsPow2(alignment)))
            throw Corrupt(_origin + FileHeader.AlignmentOffset, $"the file header declares a data alignment of {alignment} bytes");
        return (major, minor, aligned, aligned ? (int)alignment : 0, flags);
    }

    /// <summary>Reads a record's header, metadata and padding; handles the End record completely (returning null).</summary>
    private RecordInfo? ReadRecordStart()
    {
        long recordStart = _position;
        int got = _source.ReadAtLeast(_recordHeader, _recordHeader.Length, throwOnEndOfStream: false);
        _position += got;
        if (got == 0)
            throw Fail(ContextFormatError.Truncated, Abs(recordStart),
                $"{_name} is truncated at byte {Abs(recordStart)}: it ends after {_nextSequence} records without an End record, so the checkpoint that wrote it did not finish. Use an earlier context file.");
        if (got < _recordHeader.Length)
            throw Truncated(Abs(_position));
        if (!RecordHeader.TryDecode(_recordHeader, out var header, out string? problem))
            throw Corrupt(Abs(recordStart), problem!);
        if (header.Sequence != (ulong)_nextSequence)
            throw Corrupt(Abs(recordStart), $"record number {header.Sequence} is where number {_nextSequence} belongs, so records are missing or repeated");
        if ((uint)header.Kind is 0 or >= 0x8000_0000)
            throw Corrupt(Abs(recordStart), $"a record has the invalid kind 0x{(uint)header.Kind:X}");
        if (header.MetadataLength > FormatConstants.MaxMetadataLength)
            throw Corrupt(Abs(recordStart), $"a record claims {header.MetadataLength} bytes of metadata, more than the format allows");
        if (header.DataLength > long.MaxValue)
            throw Corrupt(Abs(recordStart), $"a record claims {header.DataLength} bytes of data");

        long dataLength = (long)header.DataLength;
        // Older files never set the record flag; 1.0 to 1.2 readers ignored it, and so does this one in their files.
        bool rawData = HasRawData && (header.Flags & RecordFlags.RawData) != 0;
        if (rawData && dataLength > FormatConstants.MaxMetadataLength)
            throw Corrupt(Abs(recordStart), $"a record claims {dataLength} bytes of raw data for its metadata, more than the format allows");
        long dataStart = recordStart + FormatConstants.RecordHeaderLength + (long)header.MetadataLength;
        uint expectedPadding = DataAligned && dataLength > 0 && !rawData ? ContextWriter.Padding(dataStart, _alignment) : 0;
        if (header.PaddingLength != expectedPadding)
            throw Corrupt(Abs(recordStart), $"a record has {header.PaddingLength} bytes of padding where {expectedPadding} belong");

        byte[] metadata = new byte[header.MetadataLength];
        ReadExact(metadata);
        if (XxHash3.HashToUInt64(metadata) != header.MetadataChecksum)
            throw Corrupt(Abs(recordStart + FormatConstants.RecordHeaderLength), $"the metadata of the {KindName(header.Kind)} record at byte {Abs(recordStart)} does not match its checksum");
        ReadPadding(header.PaddingLength);
        _nextSequence++;

        var record = new RecordInfo(header.Kind, header.Flags, metadata, dataLength,
            _canSeek ? Abs(_position) : -1, Abs(recordStart), (long)header.Sequence)
        {
            FileMinorVersion = FormatMinor,
            FileHasRawData = HasRawData,
        };
        _current = record;
        _dataRemaining = dataLength;
        _dataHash.Reset();
        _dataHashed = true;
        _trailerPending = true;
        if (rawData)
        {
            // Verified here, whatever Verify says, so that metadata and its raw data reach the caller checked alike.
            var bytes = dataLength == 0 ? [] : new byte[dataLength];
            if (dataLength == 0)
                ReadTrailer();
            else
                ReadData(bytes);
            record.RawData = bytes;
        }
        else if (dataLength == 0)
            ReadTrailer();

        if (header.Kind == RecordKind.End)
        {
            ReadEnd(record);
            return null;
        }
        return record;
    }

    private void ReadEnd(RecordInfo end)
    {
        if (end.DataLength != 0)
            throw Corrupt(end.RecordOffset, "the End record has data");
        EndRecordMetadata? summary;
        try
        {
            summary = JsonSerializer.Deserialize<EndRecordMetadata>(end.Metadata, ContextJson.Options);
        }
        catch (JsonException)
        {
            summary = null;
        }
        if (summary is null)
            throw Corrupt(end.RecordOffset, "the End record's metadata cannot be read");
        if (summary.RecordCount != end.Sequence || summary.TotalBytes != end.RecordOffset - _origin)
            throw Corrupt(end.RecordOffset,
                $"the End record counts {summary.RecordCount} records in {summary.TotalBytes} bytes, but {end.Sequence} records in {end.RecordOffset - _origin} bytes precede it");

        // Reading on, rather than comparing with Length, also catches bytes appended to a pipe.
        Span<byte> probe = stackalloc byte[1];
        if (_source.ReadAtLeast(probe, 1, throwOnEndOfStream: false) != 0)
            throw Corrupt(Abs(_position), "bytes follow the End record");
        _current = null;
        _ended = true;
    }

    private void ReadTrailer()
    {
        Span<byte> trailer = stackalloc byte[FormatConstants.RecordTrailerLength];
        long trailerStart = _position;
        ReadExact(trailer);
        ulong stored = BinaryPrimitives.ReadUInt64LittleEndian(trailer);
        var record = _current!;
        if (_dataHashed && stored != _dataHash.GetCurrentHashAsUInt64())
            throw Corrupt(Abs(trailerStart), record.DataLength == 0
                ? $"the trailer of the {KindName(record.Kind)} record at byte {record.RecordOffset} is damaged"
                : $"the data of the {KindName(record.Kind)} record at byte {record.RecordOffset} does not match its checksum");
        record.DataChecksum = stored;
        record.DataChecksumKnown = true;
        _trailerPending = false;
    }

    private void ReadPadding(uint length)
    {
        if (length == 0)
            return;
        Span<byte> chunk = stackalloc byte[FormatConstants.DataAlignment];
        while (length > 0)
        {
            int n = (int)Math.Min(length, (uint)chunk.Length);
            long start = _position;
            ReadExact(chunk[..n]);
            // Padding is outside every checksum, so it must be checked for what it is: zeros.
            int bad = chunk[..n].IndexOfAnyExcept((byte)0);
            if (bad >= 0)
                throw Corrupt(Abs(start + bad), "padding before record data is not zero");
            length -= (uint)n;
        }
    }

    private void FinishCurrent()
    {
        if (_current is not null && _trailerPending)
            SkipData(Verify);
        _current = null;
    }

    private void ReadExact(Span<byte> buffer)
    {
        int got = _source.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        _position += got;
        if (got < buffer.Length)
            throw Truncated(Abs(_position));
    }

    private void CheckUsable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_failure is not null)
            throw new ContextFormatException(_failure.Error, _failure.Offset, _failure.Message, _failure);
    }

    private long Abs(long contextOffset) => _origin + contextOffset;

    private ContextFormatException Truncated(long offset) =>
        Fail(ContextFormatError.Truncated, offset,
            $"{_name} is truncated at byte {offset}: the checkpoint that wrote it did not finish, or the file was not copied whole. Use an earlier context file.");

    private ContextFormatException Corrupt(long offset, string problem) =>
        Fail(ContextFormatError.Corrupt, offset,
            $"{_name} is corrupt at byte {offset}: {problem}. The file was damaged after it was written; use another copy or an earlier context file.");

    private ContextFormatException Fail(ContextFormatError error, long offset, string message) =>
        _failure = new ContextFormatException(error, offset, message);

    private static string KindName(RecordKind kind) =>
        FormatConstants.IsKnownKind(kind) ? kind.ToString() : $"0x{(uint)kind:X}";

    /// <summary>Says what a foreign file looks like, so that a wrong path is easy to recognise.</summary>
    private static string Describe(ReadOnlySpan<byte> start)
    {
        if (start.StartsWith("\u007FELF"u8))
            return "an ELF header (it is a program or library)";
        if (start.StartsWith("#!"u8))
            return "\"#!\" (it is a script)";
        if (start.StartsWith((ReadOnlySpan<byte>)[0x1F, 0x8B]))
            return "a gzip header (decompress it first)";
        if (start.StartsWith((ReadOnlySpan<byte>)[0x28, 0xB5, 0x2F, 0xFD]))
            return "a zstd header (decompress it first)";
        if (start.Length > 0 && start.IndexOfAnyInRange((byte)0, (byte)8) < 0 && start.IndexOfAnyInRange((byte)14, (byte)31) < 0)
            return $"the text \"{Encoding.UTF8.GetString(start).ReplaceLineEndings(" ").Trim()}\"";
        return $"the bytes {Convert.ToHexString(start[..Math.Min(start.Length, 8)])}";
    }
}
