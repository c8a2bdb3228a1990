namespace CrCheckpoint.Engine.Format;

/// <summary>
/// The kind of a record in a context file, stored as a little-endian u32.
/// </summary>
/// <remarks>
/// Ranges (see docs/context-format.md): 0 is never valid, so that zeroed bytes never read as a record;
/// 0x0000_0001–0x0000_FFFF are kinds defined by this format (version 1.0 defines 1–9; a later minor version
/// adds more here, non-critical, or critical with an incompatible file flag); 0x0001_0000–0x0FFF_FFFF are reserved for later versions;
/// 0x1000_0000–0x1FFF_FFFF are private or experimental kinds; 0x7FFF_FFFF is the End record;
/// 0x8000_0000 and above are invalid.
/// </remarks>
public enum RecordKind : uint
{
    /// <summary>Checkpoint-wide information: who, when, which host, which kernel.</summary>
    Image = 1,

    /// <summary>One process of the checkpointed tree.</summary>
    Process = 2,

    /// <summary>One thread of a process: registers, signal mask, thread-local state.</summary>
    Thread = 3,

    /// <summary>The memory map (VMAs) of one process.</summary>
    MemoryMap = 4,

    /// <summary>Contents of memory pages of one process; the data is the raw pages.</summary>
    MemoryPages = 5,

    /// <summary>The open file descriptors of one process.</summary>
    FileTable = 6,

    /// <summary>Contents of a file that cannot be found again at restart (e.g. deleted or anonymous files); the data is the raw bytes.</summary>
    FileContent = 7,

    /// <summary>The bytes in flight in one pipe between processes of the checkpoint; the data is those bytes.</summary>
    PipeData = 8,

    /// <summary>The bytes queued in one unix socket of a socket pair inside the checkpoint; the data is those bytes.</summary>
    SocketData = 9,

    /// <summary>The last record of every complete file; its presence proves the file is complete.</summary>
    End = 0x7FFF_FFFF,
}
