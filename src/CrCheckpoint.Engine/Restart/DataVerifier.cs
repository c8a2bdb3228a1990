using System.IO.Hashing;
using CrCheckpoint.Engine.Image;

namespace CrCheckpoint.Engine.Restart;

/// <summary>
/// Checks the checksums of every page and file block a restart uses, on a second core while the
/// restarted process reads the same bytes itself, so corruption is caught before the process runs.
/// </summary>
public sealed class DataVerifier
{
    private readonly Task<string?> _task;

    private DataVerifier(Task<string?> task) => _task = task;

    public static DataVerifier Start(string contextPath, IEnumerable<ProcessImage> processes)
    {
        var blocks = processes.SelectMany(p =>
            p.Pages.Select(pg => (pg.DataOffset, pg.DataLength, pg.DataChecksum, $"the saved pages of process {p.Pid} at 0x{pg.Record.AreaStart:x}"))
             .Concat(p.FileContents.Select(f => (f.DataOffset, f.DataLength, f.DataChecksum, $"the saved copy of {f.Record.Path}"))))
            .ToList();
        return new DataVerifier(Task.Factory.StartNew(() => Verify(contextPath, blocks), TaskCreationOptions.LongRunning));
    }

    private static string? Verify(string path, List<(long Offset, long Length, ulong Checksum, string What)> blocks)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        var buffer = GC.AllocateUninitializedArray<byte>(4 << 20);
        var hash = new XxHash3();
        foreach (var (offset, length, checksum, what) in blocks)
        {
            hash.Reset();
            for (long done = 0; done < length;)
            {
                var n = RandomAccess.Read(handle, buffer.AsSpan(0, (int)Math.Min(buffer.Length, length - done)), offset + done);
                if (n == 0) return $"{path} ends inside {what}";
                hash.Append(buffer.AsSpan(0, n));
                done += n;
            }
            if (hash.GetCurrentHashAsUInt64() != checksum) return $"{path} is corrupt: the checksum of {what} does not match";
        }
        return null;
    }

    /// <summary>Waits for the check; throws when a block did not match.</summary>
    public void Complete()
    {
        var problem = _task.GetAwaiter().GetResult();
        if (problem is not null)
            throw new RestartException(RestartFailure.ContextInvalid, problem + ". The context file is damaged; use another one.");
    }
}
