using System.IO.Hashing;
using CrCheckpoint.Engine.Format;
using CrCheckpoint.Engine.Image;

namespace CrCheckpoint.Engine.Restart;

/// <summary>
/// Checks the checksums of every page and file block a restart uses, on a second core while the
/// restarted process reads the same bytes itself, so corruption is caught before the process runs.
/// </summary>
public sealed class DataVerifier
{
    private readonly Task<string?> _task;

    private readonly string? _path;

    private readonly CancellationTokenSource _stop;

    private DataVerifier(Task<string?> task, string? path, CancellationTokenSource stop)
    {
        _task = task;
        _path = path;
        _stop = stop;
    }

    /// <summary>A failed restart needs no answer: the hashing stops at the next block instead of reading the whole file.</summary>
    public void Cancel() => _stop.Cancel();

    public static DataVerifier Start(ContextImage image)
    {
        var blocks = image.Processes.SelectMany(p =>
                p.Pages.Select(pg => (pg.Source, pg.DataOffset, pg.DataLength, pg.DataChecksum, $"the saved pages of process {p.Pid} at 0x{pg.Record.AreaStart:x}"))
                 .Concat(p.FileContents.Select(f => (f.Source, f.DataOffset, f.DataLength, f.DataChecksum, $"the saved copy of {f.Record.Path}"))))
            .Concat(image.Pipes.Select(f => (f.Source, f.DataOffset, f.DataLength, f.DataChecksum, $"the bytes in flight in pipe:[{f.Record.Inode}]")))
            .Concat(image.Sockets.Select(f => (f.Source, f.DataOffset, f.DataLength, f.DataChecksum, $"the bytes queued in socket:[{f.Record.Inode}]")))
            .ToList();
        var stop = new CancellationTokenSource();
        // A pool thread: starting a dedicated one costs more than a small restart's whole rebuild.
        return new DataVerifier(Task.Run(
            () => blocks.GroupBy(b => b.Source).Select(g => Verify(g.Key, g.Select(b => (b.DataOffset, b.DataLength, b.DataChecksum, b.Item5)).ToList(), stop.Token)).FirstOrDefault(r => r is not null)),
            image.Path, stop);
    }

    /// <summary>
    /// Hashes each block in one call over a read-only mapping of the file: no copy of the bytes into
    /// the engine, and no buffer to hold them.
    /// </summary>
    private static unsafe string? Verify(string path, List<(long Offset, long Length, ulong Checksum, string What)> blocks, CancellationToken stop)
    {
        var fileLength = new FileInfo(path).Length;
        if (fileLength == 0 || blocks.Count == 0) return null;
        using var file = System.IO.MemoryMappedFiles.MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, System.IO.MemoryMappedFiles.MemoryMappedFileAccess.Read);
        using var view = file.CreateViewAccessor(0, 0, System.IO.MemoryMappedFiles.MemoryMappedFileAccess.Read);
        byte* start = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref start);
        try
        {
            foreach (var (offset, length, checksum, what) in blocks)
            {
                if (stop.IsCancellationRequested) return null;
                if (offset < 0 || offset + length > fileLength) return $"{path} ends inside {what}";
                var hash = length <= int.MaxValue
                    ? XxHash3.HashToUInt64(new ReadOnlySpan<byte>(start + offset, (int)length))
                    : StreamingHash(start + offset, length);
                if (hash != checksum) return $"{path} is corrupt: the checksum of {what} does not match";
            }
            return null;
        }
        finally
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
    }

    private static unsafe ulong StreamingHash(byte* data, long length)
    {
        var hash = new StreamingXxHash3();
        for (long done = 0; done < length; done += int.MaxValue / 2)
            hash.Append(new ReadOnlySpan<byte>(data + done, (int)Math.Min(int.MaxValue / 2, length - done)));
        return hash.GetCurrentHashAsUInt64();
    }

    /// <summary>Waits for the check; throws when a block did not match.</summary>
    public void Complete()
    {
        var problem = _task.GetAwaiter().GetResult();
        if (problem is not null)
            throw new RestartException(RestartFailure.ContextInvalid, problem + ". The context file is damaged; use another one.", _path);
    }
}
