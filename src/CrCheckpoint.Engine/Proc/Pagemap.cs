using CrCheckpoint.Engine.Native;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.Proc;

/// <summary>A run of consecutive pages to save, counted in pages from the start of its area.</summary>
public readonly record struct PageRun(long FirstPage, long Count);

/// <summary>
/// Reads /proc/PID/pagemap: 8 bytes per page. Bit 63 present, 62 swapped, 61 file page or shared
/// anonymous. In a private mapping, a present or swapped page without bit 61 is a private copy:
/// the only kind of page that exists nowhere else and must go into the context file. Bit 58 marks a
/// guard page (MADV_GUARD_INSTALL): shown as swapped, but it has no data and faults when touched.
/// </summary>
public sealed unsafe class Pagemap : IDisposable
{
    private const ulong Present = 1UL << 63, Swapped = 1UL << 62, FileOrShared = 1UL << 61, Guard = 1UL << 58;
    private const int ChunkPages = 64 * 1024;
    private readonly int _fd;
    private readonly ulong[] _entries = new ulong[ChunkPages];

    public Pagemap(int pid)
    {
        _fd = open($"/proc/{pid}/pagemap", O_RDONLY | O_CLOEXEC, 0);
        if (_fd == -1) throw new NativeException($"open /proc/{pid}/pagemap", ErrnoCheck.LastErrno);
    }

    /// <summary>Runs of pages that are private copies (anonymous memory, written pages of private file mappings).</summary>
    public List<PageRun> PrivatePages(ulong start, ulong end) => Runs(start, end, IsPrivate)[0];

    /// <summary>Runs of pages that are in memory or swap, whatever backs them.</summary>
    public List<PageRun> ResidentPages(ulong start, ulong end) =>
        Runs(start, end, e => (e & (Present | Swapped)) != 0 && (e & Guard) == 0)[0];

    /// <summary>Runs of guard pages.</summary>
    public List<PageRun> GuardPages(ulong start, ulong end) => Runs(start, end, IsGuard)[0];

    /// <summary>Private copies and guard pages, in one pass over the page table.</summary>
    public (List<PageRun> Private, List<PageRun> Guards) PrivateAndGuardPages(ulong start, ulong end)
    {
        var runs = Runs(start, end, IsPrivate, IsGuard);
        return (runs[0], runs[1]);
    }

    private static bool IsPrivate(ulong e) =>
        (e & (Present | Swapped)) != 0 && (e & Guard) == 0 && ((e & FileOrShared) == 0 || (e & Swapped) != 0);

    private static bool IsGuard(ulong e) => (e & Guard) != 0;

    private List<PageRun>[] Runs(ulong start, ulong end, params Func<ulong, bool>[] kinds)
    {
        var runs = kinds.Select(_ => new List<PageRun>()).ToArray();
        var runStart = kinds.Select(_ => -1L).ToArray();
        long totalPages = (long)((end - start) / 4096);
        for (long done = 0; done < totalPages;)
        {
            var count = (int)Math.Min(ChunkPages, totalPages - done);
            fixed (ulong* p = _entries)
            {
                var bytes = pread(_fd, (byte*)p, (nuint)(count * 8), (long)((start / 4096 + (ulong)done) * 8));
                if (bytes < 0) throw new NativeException("reading pagemap", ErrnoCheck.LastErrno);
                count = (int)(bytes / 8);
                if (count == 0) break;
            }
            for (var k = 0; k < kinds.Length; k++)
            {
                var wanted = kinds[k];
                for (var i = 0; i < count; i++)
                {
                    var page = done + i;
                    if (wanted(_entries[i]))
                    {
                        if (runStart[k] < 0) runStart[k] = page;
                    }
                    else if (runStart[k] >= 0)
                    {
                        runs[k].Add(new PageRun(runStart[k], page - runStart[k]));
                        runStart[k] = -1;
                    }
                }
            }
            done += count;
        }
        for (var k = 0; k < kinds.Length; k++)
            if (runStart[k] >= 0) runs[k].Add(new PageRun(runStart[k], totalPages - runStart[k]));
        return runs;
    }

    public void Dispose() => close(_fd);
}
