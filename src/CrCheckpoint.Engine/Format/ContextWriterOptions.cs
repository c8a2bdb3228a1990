namespace CrCheckpoint.Engine.Format;

/// <summary>How a <see cref="ContextWriter"/> lays out its file.</summary>
public sealed class ContextWriterOptions
{
    /// <summary>
    /// Pad so that each record's data starts on a multiple of <see cref="FormatConstants.DataAlignment"/> bytes
    /// from the start of the file, so a restart can map pages straight from the file. This costs at most 4095 bytes
    /// per record with data. It is applied on pipes too, because a pipe often ends in a file (ssh host 'cat &gt; x.ctx');
    /// turn it off only when the stream goes straight to a reader that never maps it.
    /// </summary>
    public bool AlignData { get; init; } = true;

    /// <summary>Leave the destination stream open when the writer is disposed.</summary>
    public bool LeaveOpen { get; init; }
}
