namespace CrCheckpoint.Engine.Format;

/// <summary>
/// The open data part of one record, from <see cref="ContextWriter.BeginDataRecord"/>. Its length was declared in the
/// record header already (the writer cannot go back to fix it), so exactly that many bytes must be written.
/// </summary>
public sealed class DataRecordWriter
{
    private readonly ContextWriter _owner;
    private bool _completed;

    internal DataRecordWriter(ContextWriter owner, long dataLength, long dataOffset)
    {
        _owner = owner;
        DataLength = dataLength;
        Remaining = dataLength;
        DataOffset = dataOffset;
    }

    /// <summary>Bytes of data the record was declared with.</summary>
    public long DataLength { get; }

    /// <summary>Offset of the first data byte from the start of the file.</summary>
    public long DataOffset { get; }

    /// <summary>Bytes still to be written before <see cref="Complete"/>.</summary>
    public long Remaining { get; private set; }

    /// <summary>
    /// Hashes <paramref name="chunk"/> and writes it straight to the destination, without copying it.
    /// Throws, writing nothing, if the chunk goes past the declared length.
    /// </summary>
    public void Write(ReadOnlySpan<byte> chunk)
    {
        if (_completed)
            throw new InvalidOperationException("The data record is already complete.");
        if (chunk.Length > Remaining)
            throw new ArgumentException(
                $"The chunk of {chunk.Length} bytes goes past the record's declared data length of {DataLength} bytes ({Remaining} remain).",
                nameof(chunk));
        _owner.WriteData(this, chunk);
        Remaining -= chunk.Length;
    }

    /// <summary>Writes the record's trailer and returns the data checksum. Throws if fewer bytes were written than declared.</summary>
    public ulong Complete()
    {
        if (_completed)
            throw new InvalidOperationException("The data record is already complete.");
        if (Remaining != 0)
            throw new InvalidOperationException(
                $"The data record was declared with {DataLength} bytes of data but only {DataLength - Remaining} were written.");
        ulong checksum = _owner.CompleteData(this);
        _completed = true;
        return checksum;
    }
}
