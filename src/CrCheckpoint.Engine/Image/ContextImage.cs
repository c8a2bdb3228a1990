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

    public DateTimeOffset CreatedUtc => Image.CreatedUtc;
    public int[] ProcessIds => Image.ProcessIds;

    public static ContextImage Load(string path, bool verify)
    {
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
        ProcessImage Current(RecordInfo r) => current ?? throw new ContextFormatException(ContextFormatError.Corrupt, r.RecordOffset,
            $"{name}: a {r.Kind} record comes before any Process record.");

        for (var record = reader.ReadNext(); record is not null; record = reader.ReadNext())
        {
            switch (record.Kind)
            {
                case RecordKind.Process:
                    current = new ProcessImage { Process = record.GetMetadata<ProcessRecord>() };
                    image.Processes.Add(current);
                    break;
                case RecordKind.Thread:
                    Current(record).Threads.Add(record.GetMetadata<ThreadRecord>());
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
                    Current(record).Pages.Add(new PagesImage(meta, record.DataOffset, record.DataLength, record.DataChecksum));
                    break;
                }
                case RecordKind.FileContent:
                {
                    var meta = record.GetMetadata<FileContentRecord>();
                    reader.SkipData(verify);
                    var content = new FileContentImage(meta, record.DataOffset, record.DataLength, record.DataChecksum);
                    Current(record).FileContents.Add(content);
                    image.FileContents.Add(content);
                    break;
                }
                case RecordKind.PipeData:
                {
                    var meta = record.GetMetadata<PipeDataRecord>();
                    reader.SkipData(verify);
                    image.Pipes.Add(new PipeImage(meta, record.DataOffset, record.DataLength, record.DataChecksum));
                    break;
                }
            }
        }
        return image;
    }
}
