namespace CrCheckpoint.Engine.Format;

/// <summary>
/// A context file was refused. <see cref="Exception.Message"/> says what is wrong and what to do about it.
/// </summary>
public sealed class ContextFormatException : Exception
{
    public ContextFormatException(ContextFormatError error, long offset, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Error = error;
        Offset = offset;
    }

    public ContextFormatError Error { get; }

    /// <summary>Byte offset in the source stream where the problem was found, or -1 if it has none.</summary>
    public long Offset { get; }
}
