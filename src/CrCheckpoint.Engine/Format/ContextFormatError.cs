namespace CrCheckpoint.Engine.Format;

/// <summary>Why a context file was refused.</summary>
public enum ContextFormatError
{
    /// <summary>The stream is not a context file at all (wrong magic).</summary>
    Foreign,

    /// <summary>The file was written in a format version this reader cannot read.</summary>
    UnsupportedVersion,

    /// <summary>The stream ends before the End record: the writer did not finish, or the copy is incomplete.</summary>
    Truncated,

    /// <summary>A checksum, marker or length does not match: the bytes were damaged, or something follows the End record.</summary>
    Corrupt,

    /// <summary>A critical record of a kind this reader does not know: the file was written by a newer version.</summary>
    UnknownCriticalRecord,
}
