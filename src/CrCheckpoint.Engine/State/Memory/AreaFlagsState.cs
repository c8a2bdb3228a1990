using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Proc;
using CrCheckpoint.Engine.Tracing;

namespace CrCheckpoint.Engine.State.Memory;

/// <summary>
/// What madvise, mlock and mseal did to each area (the vma flags smaps shows as VmFlags), the guard
/// pages of MADV_GUARD_INSTALL, and the access mode a shared area's file was opened with (VM_MAYWRITE,
/// which decides whether the program may later mprotect it writable). A fresh mmap has none of
/// these, so each comes back by its own call once the area is mapped and filled, and is read back
/// from smaps and pagemap before the process runs. Flags nothing can set again are refused.
/// </summary>
public static class AreaFlagsState
{
    private const long MADV_RANDOM = 1, MADV_SEQUENTIAL = 2, MADV_DONTFORK = 10, MADV_MERGEABLE = 12, MADV_HUGEPAGE = 14,
        MADV_NOHUGEPAGE = 15, MADV_DONTDUMP = 16, MADV_WIPEONFORK = 18, MADV_GUARD_INSTALL = 102;
    private const long MLOCK_ONFAULT = 1;
    private const long SYS_mlock2 = 325, SYS_mseal = 462;

    private static readonly (string Flag, long Advice)[] Advice =
    [
        ("rr", MADV_RANDOM), ("sr", MADV_SEQUENTIAL), ("dc", MADV_DONTFORK), ("mg", MADV_MERGEABLE),
        ("hg", MADV_HUGEPAGE), ("nh", MADV_NOHUGEPAGE), ("dd", MADV_DONTDUMP), ("wf", MADV_WIPEONFORK),
    ];

    /// <summary>Flags that would change how the program runs and that a restart cannot give back.</summary>
    private static readonly (string Flag, string What)[] Refused =
    [
        ("ht", "huge-page memory (MAP_HUGETLB or hugetlbfs)"),
        ("um", "registered with a userfaultfd (missing pages)"),
        ("uw", "registered with a userfaultfd (write protection)"),
        ("ui", "registered with a userfaultfd (minor faults)"),
        ("ss", "a shadow stack"),
        ("dp", "droppable memory (MAP_DROPPABLE)"),
    ];

    private static readonly HashSet<string> PrivateKept = [.. Advice.Select(a => a.Flag), "lo", "lf", "sl"];
    private static readonly HashSet<string> SharedKept = [.. PrivateKept, "mw"];

    private static bool IsShared(MemoryAreaKind kind) => kind is MemoryAreaKind.SharedFile or MemoryAreaKind.SharedAnonymous;

    private static bool IsKernel(MemoryAreaKind kind) =>
        kind is MemoryAreaKind.Vdso or MemoryAreaKind.Vvar or MemoryAreaKind.VvarVclock or MemoryAreaKind.Vsyscall or MemoryAreaKind.Special;

    /// <summary>The flags of one area that the restart gives back, sorted; refuses the ones it cannot.</summary>
    public static string[]? Capture(int pid, MemoryArea area, MemoryAreaKind kind, HashSet<string>? flags)
    {
        if (flags is null || IsKernel(kind)) return null;
        foreach (var (flag, what) in Refused)
            if (flags.Contains(flag))
                throw new UnsupportedStateException(pid,
                    $"memory area 0x{area.Start:x}-0x{area.End:x} ({Describe(area.Path)}) is {what} (VmFlags '{flag}'), which this version cannot restore");
        var kept = IsShared(kind) ? SharedKept : PrivateKept;
        return flags.Where(kept.Contains).Order(StringComparer.Ordinal).ToArray();
    }

    /// <summary>Whether the file of a shared area must be opened for writing (it was: the area may become writable).</summary>
    public static bool MayWrite(MemoryAreaRecord area) =>
        area.Protection[1] == 'w' || (area.VmFlags?.Contains("mw") ?? area.Protection[1] == 'w');

    /// <summary>
    /// The calls that give an area its guard pages, advice, locks and seal, in that order: guards
    /// cannot go into locked memory, and a sealed area accepts no more changes.
    /// </summary>
    public static RemoteBatch Calls(IEnumerable<MemoryAreaRecord> areas)
    {
        var calls = new RemoteBatch();
        var seals = new RemoteBatch();
        foreach (var area in areas)
        {
            var length = (long)(area.End - area.Start);
            foreach (var run in area.GuardPages ?? [])
                calls.Add(What("MADV_GUARD_INSTALL", area), new RemoteCall(Syscalls.madvise, (long)area.Start + run[0] * 4096, run[1] * 4096, MADV_GUARD_INSTALL));
            if (area.VmFlags is not { } flags) continue;
            foreach (var (flag, advice) in Advice)
                if (flags.Contains(flag))
                    calls.Add(What($"madvise '{flag}'", area), new RemoteCall(Syscalls.madvise, (long)area.Start, length, advice));
            if (flags.Contains("lo"))
                calls.Add(What("mlock", area), new RemoteCall(SYS_mlock2, (long)area.Start, length, flags.Contains("lf") ? MLOCK_ONFAULT : 0));
            if (flags.Contains("sl"))
                seals.Add(What("mseal", area), new RemoteCall(SYS_mseal, (long)area.Start, length, 0));
        }
        calls.AddRange(seals);
        return calls;
    }

    /// <summary>Applies <see cref="Calls"/> in the rebuilt process.</summary>
    public static void Restore(Tracee tracee, IEnumerable<MemoryAreaRecord> areas)
    {
        var calls = Calls(areas);
        if (calls.Count == 0) return;
        tracee.Run(calls);
    }

    private static string What(string call, MemoryAreaRecord area) => $"{call} of 0x{area.Start:x}-0x{area.End:x} ({Describe(area.Path)})";

    /// <summary>
    /// Each saved area is where it was with its protection, its kept flags and its guard pages:
    /// /proc/PID/maps, smaps and (only for areas with guards) pagemap, read once.
    /// </summary>
    public static void Verify(int pid, MemoryMapRecord map)
    {
        var areas = map.Areas.Where(a => !IsKernel(a.Kind)).ToList();
        if (areas.Count == 0) return;
        var now = ProcMaps.Read(pid);
        var smaps = areas.Any(a => a.VmFlags?.Any(f => f != "mw") == true) ? ProcSmaps.ReadFlags(pid) : [];
        Pagemap? pagemap = null;
        try
        {
            foreach (var area in areas)
            {
                var what = $"memory area 0x{area.Start:x}-0x{area.End:x} ({Describe(area.Path)})";
                for (var at = area.Start; at < area.End;)
                {
                    var here = now.FirstOrDefault(a => a.Start <= at && at < a.End);
                    if (here is null) throw RestartCheck.Mismatch(pid, $"{what}: the page at 0x{at:x}", "mapped", "not mapped");
                    // A shared file mapping whose file travelled in the context comes back as a private
                    // copy of it (the --save-shared semantics): only its rwx can be compared.
                    var compared = area.Kind == MemoryAreaKind.SharedFile && area.SavedFileKey is not null ? 3 : 4;
                    RestartCheck.Expect(pid, $"{what}: protection at 0x{at:x}", area.Protection[..compared], here.Protection[..compared]);
                    at = here.End;
                }
                // "mw" alone (a shared file mapping that may become writable) follows from how the restart
                // opened the file; smaps, which walks every page to count them, is read only for more.
                if (area.VmFlags is { Length: > 0 } saved && smaps.Count > 0)
                {
                    var kept = IsShared(area.Kind) ? SharedKept : PrivateKept;
                    var actual = (ProcSmaps.At(smaps, area.Start) ?? []).Where(kept.Contains).Order(StringComparer.Ordinal);
                    RestartCheck.Expect(pid, $"{what}: VmFlags", string.Join(' ', saved), string.Join(' ', actual));
                }
                if (area.GuardPages is { Length: > 0 } guards)
                {
                    pagemap ??= new Pagemap(pid);
                    var actual = pagemap.GuardPages(area.Start, area.End).Select(r => $"{r.FirstPage}+{r.Count}");
                    RestartCheck.Expect(pid, $"{what}: guard pages", string.Join(' ', guards.Select(g => $"{g[0]}+{g[1]}")), string.Join(' ', actual));
                }
            }
        }
        finally { pagemap?.Dispose(); }
    }

    private static string Describe(string path) => path.Length == 0 ? "anonymous" : path;
}
