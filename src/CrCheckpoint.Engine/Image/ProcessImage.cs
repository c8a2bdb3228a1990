using CrCheckpoint.Engine.State.Files;
using CrCheckpoint.Engine.State.Memory;
using CrCheckpoint.Engine.State.Process;
using CrCheckpoint.Engine.State.Threads;

namespace CrCheckpoint.Engine.Image;

/// <summary>One process as a context file holds it: its records, and where its data lies in the file.</summary>
public sealed class ProcessImage
{
    public required ProcessRecord Process { get; init; }
    private Task<List<ThreadRecord>>? _threadsParsing;
    private List<ThreadRecord> _threads = [];

    /// <summary>
    /// The Thread records, main thread first. They may still be being parsed in the background
    /// (see <see cref="ParseThreadsLater"/>); the first use waits for them. Until then,
    /// <see cref="ProcessRecord.ThreadIds"/> tells which threads there are.
    /// </summary>
    public List<ThreadRecord> Threads
    {
        get
        {
            if (_threadsParsing is { } parsing)
            {
                try { _threads = parsing.GetAwaiter().GetResult(); }
                finally { _threadsParsing = null; }
            }
            return _threads;
        }
    }

    /// <summary>A thread record is mostly its XSAVE area: with many threads, a restart parses them while it rebuilds memory.</summary>
    internal void ParseThreadsLater(Task<List<ThreadRecord>> parsing) => _threadsParsing = parsing;
    public MemoryMapRecord Map { get; set; } = new();
    public FileTableRecord Files { get; set; } = new();
    public List<PagesImage> Pages { get; } = [];
    public List<FileContentImage> FileContents { get; } = [];
    /// <summary>The context file this process came from.</summary>
    public string Source { get; init; } = "";

    public int Pid => Process.Pid;
    public string Name => Process.Name;
    public string Executable => Process.Executable;

    /// <summary>Each memory area with how much of it the context holds and the checksum of those bytes.</summary>
    public IEnumerable<MemoryRegionView> Regions => Map.Areas.Select(a =>
    {
        var pages = Pages.FirstOrDefault(p => p.Record.AreaStart == a.Start);
        return new MemoryRegionView(a.Start, a.End, a.Protection, a.Kind, a.Path, a.SavedPages, a.SavedPages * 4096,
            pages is null ? null : $"{pages.DataChecksum:x16}", pages?.Record.Runs ?? [], pages?.DataOffset ?? -1);
    });
}

/// <summary>A MemoryPages record: which pages, and where their bytes start in the file.</summary>
/// <remarks>Source is the context file the bytes are in (a checkpoint directory has one per process).</remarks>
public sealed record PagesImage(MemoryPagesRecord Record, string Source, long DataOffset, long DataLength, ulong DataChecksum);

/// <summary>A FileContent record and where the file's bytes start in the context file.</summary>
public sealed record FileContentImage(FileContentRecord Record, string Source, long DataOffset, long DataLength, ulong DataChecksum);

/// <summary>A PipeData record: the bytes that were in flight in one pipe.</summary>
public sealed record PipeImage(PipeDataRecord Record, string Source, long DataOffset, long DataLength, ulong DataChecksum);

/// <summary>A SocketData record: what waited in one unix socket's receive queue.</summary>
public sealed record SocketImage(SocketDataRecord Record, string Source, long DataOffset, long DataLength, ulong DataChecksum);

/// <summary>What Get-CrContext shows of one memory area. DataChecksum is XxHash3-64 of the saved bytes, in order.</summary>
public sealed record MemoryRegionView(
    ulong Start, ulong End, string Protection, MemoryAreaKind Kind, string Path, long SavedPages, long SavedBytes,
    string? DataChecksum, long[][] SavedRuns, long DataOffset)
{
    public string Range => $"{Start:x}-{End:x}";
}
