using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Proc;
using CrCheckpoint.Engine.State.Process;
using CrCheckpoint.Engine.Tracing;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Memory;

/// <summary>Which mapped files travel inside the context (the man page's --save-* options).</summary>
[Flags]
public enum SaveMappedFiles
{
    None = 0,
    Executable = 1,
    Private = 2,
    Shared = 4,
    All = Executable | Private | Shared,
}

/// <summary>What will be saved of one area: the record that describes it and the pages to copy.</summary>
public sealed record AreaPlan(MemoryArea Area, MemoryAreaRecord Record, List<PageRun> Runs);

/// <summary>A whole file that must travel in the context (unlinked, or asked for by --save-*).</summary>
public sealed record FileToSave(string Key, string Path, string SourcePath, FileIdentity Identity, string Reason)
{
    /// <summary>Save only the ranges that hold data (shared memory objects and unlinked files are often huge and sparse), and give the holes back.</summary>
    public bool Sparse => Reason is "shmem" or "unlinked";
}

/// <summary>Plans the memory part of a checkpoint: the map, the pages, the files that must go with it.</summary>
public static class MemoryCapture
{
    public static (MemoryMapRecord Map, List<AreaPlan> Plans, List<FileToSave> Files) Plan(
        int pid, IReadOnlyList<MemoryArea> areas, string executable, SaveMappedFiles save)
    {
        CheckKernelAreas(pid, areas);
        var plans = new List<AreaPlan>();
        var files = new Dictionary<string, FileToSave>();
        using var pagemap = new Pagemap(pid);
        var vmFlags = ProcSmaps.ReadFlags(pid).ToDictionary(a => a.Start, a => a.Flags);
        foreach (var area in areas)
        {
            var kind = Classify(area);
            FileIdentity? identity = null;
            string? savedKey = null;
            var runs = new List<PageRun>();
            var mapFile = $"/proc/{pid}/map_files/{area.Start:x}-{area.End:x}";

            if (kind is MemoryAreaKind.PrivateFile or MemoryAreaKind.SharedFile)
            {
                identity = StatIdentity(mapFile);
                var path = area.IsDeleted ? area.Path[..^" (deleted)".Length] : area.Path;
                // A private mapping of a memfd sees the object's later writes in every page it has
                // not written itself: it must map the same object again, not a copy of it.
                var reason = area.Path.StartsWith("/memfd:", StringComparison.Ordinal) ? "shmem"
                    : area.IsDeleted ? "unlinked"
                    : kind == MemoryAreaKind.SharedFile && save.HasFlag(SaveMappedFiles.Shared) ? "save-shared"
                    : kind == MemoryAreaKind.PrivateFile && save.HasFlag(SaveMappedFiles.Private) ? "save-private"
                    : kind == MemoryAreaKind.PrivateFile && save.HasFlag(SaveMappedFiles.Executable) && path == executable ? "save-exe"
                    : null;
                if (reason is not null && identity is not null)
                {
                    savedKey = ShmemKey(identity);
                    files.TryAdd(savedKey, new FileToSave(savedKey, reason == "shmem" ? area.Path : path, mapFile, identity, reason));
                }
            }

            var flags = AreaFlagsState.Capture(pid, area, kind, vmFlags.GetValueOrDefault(area.Start));
            List<PageRun> guards = [];
            if (kind is MemoryAreaKind.Anonymous or MemoryAreaKind.Heap or MemoryAreaKind.Stack or MemoryAreaKind.PrivateFile)
                (runs, guards) = pagemap.PrivateAndGuardPages(area.Start, area.End);
            else if (flags is not null)
                guards = pagemap.GuardPages(area.Start, area.End);
            if (kind == MemoryAreaKind.SharedAnonymous)
            {
                // One shmem object may be mapped many times (memfd double mapping, as .NET's JIT
                // does): it is saved once, whole, and every area maps it again at its offset.
                identity = StatIdentity(mapFile);
                if (identity is not null)
                {
                    savedKey = ShmemKey(identity);
                    files.TryAdd(savedKey, new FileToSave(savedKey, area.Path, mapFile, identity, "shmem"));
                }
                else runs = SharedAnonymousPages(mapFile, area, pagemap);
            }

            var record = new MemoryAreaRecord
            {
                Start = area.Start, End = area.End, Protection = area.Protection, Kind = kind,
                Offset = area.Offset, Path = area.Path, File = identity, SavedFileKey = savedKey,
                SavedPages = runs.Sum(r => r.Count), GrowsDown = kind == MemoryAreaKind.Stack,
                VmFlags = flags, GuardPages = guards.Count > 0 ? guards.Select(g => new[] { g.FirstPage, g.Count }).ToArray() : null,
            };
            plans.Add(new AreaPlan(area, record, runs));
        }
        var map = new MemoryMapRecord { Pid = pid, Areas = plans.Select(p => p.Record).ToList() };
        return (map, plans, files.Values.ToList());
    }

    /// <summary>What <see cref="Plan"/> would refuse, from /proc alone (for Get-CrCheckpointable).</summary>
    public static void CheckSupported(int pid)
    {
        var areas = ProcMaps.Read(pid);
        CheckKernelAreas(pid, areas);
        var flags = ProcSmaps.ReadFlags(pid).ToDictionary(a => a.Start, a => a.Flags);
        foreach (var area in areas) AreaFlagsState.Capture(pid, area, Classify(area), flags.GetValueOrDefault(area.Start));
    }

    /// <summary>
    /// Every process this kernel starts gets a vDSO; a restarted one cannot be rid of it (the restart
    /// works through it), so a program that unmapped its own would not get back what it had.
    /// </summary>
    private static void CheckKernelAreas(int pid, IReadOnlyList<MemoryArea> areas)
    {
        if (!areas.Any(a => a.Path == "[vdso]") && File.ReadAllText("/proc/self/maps").Contains("[vdso]"))
            throw new UnsupportedStateException(pid, "the program unmapped its vDSO ([vdso]), which this version cannot restore");
        // The ring of an io_setup context: the kernel's own object, with requests in flight behind it.
        if (areas.FirstOrDefault(a => a.Path.StartsWith("/[aio]", StringComparison.Ordinal)) is { } aio)
            throw new UnsupportedStateException(pid, $"the program uses Linux AIO (io_setup; its ring at 0x{aio.Start:x}), which this version cannot checkpoint");
    }

    public static string ShmemKey(FileIdentity identity) => $"{identity.Device:x}:{identity.Inode}";

    public static MemoryAreaKind Classify(MemoryArea area) => area.Path switch
    {
        "[vdso]" => MemoryAreaKind.Vdso,
        "[vvar]" => MemoryAreaKind.Vvar,
        "[vvar_vclock]" => MemoryAreaKind.VvarVclock,
        "[vsyscall]" => MemoryAreaKind.Vsyscall,
        "[heap]" => MemoryAreaKind.Heap,
        "[stack]" => MemoryAreaKind.Stack,
        _ when area.IsKernelSpecial || (area.Path.StartsWith('[') && area.Inode == 0 && area.Path != "[anon]" && !area.Path.StartsWith("[anon:", StringComparison.Ordinal)) => MemoryAreaKind.Special,
        _ when area.IsSharedAnonymous => MemoryAreaKind.SharedAnonymous,
        _ when area.Inode == 0 => MemoryAreaKind.Anonymous,
        _ when area.Shared => MemoryAreaKind.SharedFile,
        _ => MemoryAreaKind.PrivateFile,
    };

    private static unsafe FileIdentity? StatIdentity(string path)
    {
        Stat st;
        return fstatat(AT_FDCWD, path, &st, 0) == 0 ? FileIdentity.From(st) : null;
    }

    /// <summary>
    /// Shmem pages need not be mapped in this process to exist (written through a descriptor, or by
    /// a process that has gone), so the object's own data ranges are asked for, not the page table.
    /// </summary>
    private static List<PageRun> SharedAnonymousPages(string mapFile, MemoryArea area, Pagemap pagemap)
    {
        var fd = open(mapFile, O_RDONLY | O_CLOEXEC, 0);
        if (fd == -1) return pagemap.ResidentPages(area.Start, area.End);
        try
        {
            var runs = new List<PageRun>();
            var begin = (long)area.Offset;
            var end = begin + (long)area.Length;
            var pos = begin;
            while (pos < end)
            {
                var data = lseek(fd, pos, SEEK_DATA);
                if (data < 0 || data >= end) break;
                var hole = lseek(fd, data, SEEK_HOLE);
                if (hole < 0 || hole > end) hole = end;
                var first = (data - begin) / 4096;
                var last = (hole - begin + 4095) / 4096;
                runs.Add(new PageRun(first, last - first));
                pos = hole;
            }
            return runs;
        }
        finally { close(fd); }
    }
}
