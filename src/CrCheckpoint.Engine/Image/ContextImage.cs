using CrCheckpoint.Engine.Format;
using CrCheckpoint.Engine.State;
using CrCheckpoint.Engine.State.Files;
using CrCheckpoint.Engine.State.Memory;
using CrCheckpoint.Engine.State.Process;
using CrCheckpoint.Engine.State.Threads;

namespace CrCheckpoint.Engine.Image;

/// <summary>
/// A context file read into its records (page and file data stay in the file; their offsets are kept).
/// Used by Get-CrContext and by restart. With <c>verify</c>, every checksum of every byte is checked.
/// </summary>
public sealed class ContextImage
{
    public string? Path { get; init; }
    public int FormatVersion { get; init; }
    public int FormatMinorVersion { get; init; }
    public long Bytes { get; init; }
    public bool Verified { get; init; }
    public required ImageRecord Image { get; init; }
    public List<ProcessImage> Processes { get; } = [];
    /// <summary>Every FileContent record of the file, whichever process it came with (shared objects are saved once).</summary>
    public List<FileContentImage> FileContents { get; } = [];
    public List<PipeImage> Pipes { get; } = [];
    public List<SocketImage> Sockets { get; } = [];

    public DateTimeOffset CreatedUtc => Image.CreatedUtc;
    public int[] ProcessIds => Image.ProcessIds;

    /// <summary>A context file, or a checkpoint directory (--dir): every context.* file in it, read as one checkpoint.</summary>
    public static ContextImage Load(string path, bool verify)
    {
        if (Directory.Exists(path)) return LoadDirectory(path, verify);
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        }
        catch (FileNotFoundException)
        {
            throw new FileNotFoundException($"there is no context file {path}.", path);
        }
        using (stream)
        {
            return Load(stream, path, verify);
        }
    }

    private static ContextImage LoadDirectory(string directory, bool verify)
    {
        var files = Directory.GetFiles(directory, "context.*").Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0)
            throw new FileNotFoundException($"the checkpoint directory {directory} holds no context.* file.", directory);
        var parts = files.Select(f => Load(f, verify)).ToList();
        var first = parts[0];
        var merged = new ContextImage
        {
            Path = directory,
            FormatVersion = first.FormatVersion,
            FormatMinorVersion = first.FormatMinorVersion,
            Bytes = parts.Sum(p => p.Bytes),
            Verified = verify,
            Image = first.Image,
        };
        foreach (var part in parts)
        {
            merged.Processes.AddRange(part.Processes);
            merged.FileContents.AddRange(part.FileContents.Where(f => merged.FileContents.All(m => m.Record.Key != f.Record.Key)));
            merged.Pipes.AddRange(part.Pipes.Where(p => merged.Pipes.All(m => m.Record.Inode != p.Record.Inode)));
            merged.Sockets.AddRange(part.Sockets.Where(p => merged.Sockets.All(m => m.Record.Inode != p.Record.Inode)));
        }
        var expected = first.Image.ProcessIds.Order().ToList();
        var found = merged.Processes.Select(p => p.Pid).Order().ToList();
        if (!expected.SequenceEqual(found))
            throw new ContextFormatException(ContextFormatError.Truncated, 0,
                $"the checkpoint directory {directory} should hold processes {string.Join(", ", expected)} but holds {string.Join(", ", found)}: a context file is missing.");
        return merged;
    }

    public static ContextImage Load(Stream stream, string? name, bool verify)
    {
        using var reader = new ContextReader(stream, leaveOpen: true, sourceName: name) { Verify = verify };
        var first = reader.ReadNext() ?? throw new ContextFormatException(ContextFormatError.Corrupt, 0, $"{name} holds no records.");
        if (first.Kind != RecordKind.Image)
            throw new ContextFormatException(ContextFormatError.Corrupt, first.RecordOffset, $"{name} does not start with an Image record.");
        var image = new ContextImage
        {
            Path = name,
            FormatVersion = reader.FormatMajor,
            FormatMinorVersion = reader.FormatMinor,
            Bytes = stream.CanSeek ? stream.Length : 0,
            Verified = verify,
            Image = first.GetMetadata<ImageRecord>(),
        };

        ProcessImage? current = null;
        var threads = new List<(ProcessImage Process, RecordInfo Record)>();
        ProcessImage Current(RecordInfo r) => current ?? throw new ContextFormatException(ContextFormatError.Corrupt, r.RecordOffset,
            $"{name}: a {r.Kind} record comes before any Process record.");

        for (var record = reader.ReadNext(); record is not null; record = reader.ReadNext())
        {
            switch (record.Kind)
            {
                case RecordKind.Process:
                    current = new ProcessImage { Process = record.GetMetadata<ProcessRecord>(), Source = name ?? "" };
                    image.Processes.Add(current);
                    break;
                case RecordKind.Thread:
                    threads.Add((Current(record), record));
                    break;
                case RecordKind.MemoryMap:
                    Current(record).Map = record.GetMetadata<MemoryMapRecord>();
                    break;
                case RecordKind.FileTable:
                    Current(record).Files = record.GetMetadata<FileTableRecord>();
                    break;
                case RecordKind.MemoryPages:
                {
                    var meta = record.GetMetadata<MemoryPagesRecord>();
                    reader.SkipData(verify);
                    Current(record).Pages.Add(new PagesImage(meta, name ?? "", record.DataOffset, record.DataLength, record.DataChecksum));
                    break;
                }
                case RecordKind.FileContent:
                {
                    var meta = record.GetMetadata<FileContentRecord>();
                    reader.SkipData(verify);
                    var content = new FileContentImage(meta, name ?? "", record.DataOffset, record.DataLength, record.DataChecksum);
                    Current(record).FileContents.Add(content);
                    image.FileContents.Add(content);
                    break;
                }
                case RecordKind.SocketData:
                {
                    var meta = record.GetMetadata<SocketDataRecord>();
                    reader.SkipData(verify);
                    image.Sockets.Add(new SocketImage(meta, name ?? "", record.DataOffset, record.DataLength, record.DataChecksum));
                    break;
                }
                case RecordKind.PipeData:
                {
                    var meta = record.GetMetadata<PipeDataRecord>();
                    reader.SkipData(verify);
                    image.Pipes.Add(new PipeImage(meta, name ?? "", record.DataOffset, record.DataLength, record.DataChecksum));
                    break;
                }
            }
        }

        foreach (var group in threads.GroupBy(t => t.Process))
        {
            var records = group.Select(t => t.Record).ToList();
            if (records.Count <= 4) group.Key.Threads.AddRange(records.Select(r => r.GetMetadata<ThreadRecord>()));
            else group.Key.ParseThreadsLater(Task.Run(() => records.Select(r => r.GetMetadata<ThreadRecord>()).ToList()));
        }
        return image;
    }
}
