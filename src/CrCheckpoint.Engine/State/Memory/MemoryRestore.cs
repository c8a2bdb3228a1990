using CrCheckpoint.Engine.Image;
using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Proc;
using CrCheckpoint.Engine.Restart;
using CrCheckpoint.Engine.Tracing;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Memory;

/// <summary>
/// Rebuilds an address space inside a fresh traced process: the kernel's own mappings (vDSO, vvar)
/// are moved to where they were, everything of the stub is unmapped, and each saved area is mapped
/// again. Large runs of saved pages are read straight from the context file by the process itself
/// (a remote pread64 per run, one copy done by the kernel); small scattered pages are written by the
/// engine (ProcessMemory.WriteRanges), where one remote call per page would cost more than the copy.
/// </summary>
public static class MemoryRestore
{
    private const long PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4;
    private const long MAP_SHARED = 1, MAP_PRIVATE = 2, MAP_FIXED = 0x10, MAP_ANONYMOUS = 0x20, MAP_GROWSDOWN = 0x100;
    private const long MaxReadChunk = 0x7fff_f000;

    private static readonly MemoryAreaKind[] KernelKinds = [MemoryAreaKind.Vvar, MemoryAreaKind.VvarVclock, MemoryAreaKind.Vdso];

    /// <summary>Refuses a restart whose mapped files are missing or changed, before anything is built.</summary>
    public static void CheckFiles(ProcessImage process, PathRelocator relocate)
    {
        foreach (var area in process.Map.Areas)
        {
            if (area.Kind is not (MemoryAreaKind.PrivateFile or MemoryAreaKind.SharedFile) || area.SavedFileKey is not null) continue;
            var path = relocate.Map(StripDeleted(area.Path));
            if (!File.Exists(path))
                throw new RestartException(RestartFailure.FileMissing,
                    $"{path} is mapped by process {process.Pid} ({process.Name}) but does not exist. Put it back, use -Relocate, or checkpoint with -SavePrivate/-SaveAll so that it travels in the context file.", path);
            if (area.File is { } saved && Identity(path) is { } now &&
                (now.Size != saved.Size || now.ModifiedSeconds != saved.ModifiedSeconds || now.ModifiedNanoseconds != saved.ModifiedNanoseconds))
                throw new RestartException(RestartFailure.FileChanged,
                    $"{path}, mapped by process {process.Pid} ({process.Name}), changed since the checkpoint (size {saved.Size} -> {now.Size}, modified {DateTimeOffset.FromUnixTimeSeconds(saved.ModifiedSeconds):u} -> {DateTimeOffset.FromUnixTimeSeconds(now.ModifiedSeconds):u}); restarting would run the program against different bytes. Restore the original file, or checkpoint with -SavePrivate/-SaveAll.", path);
        }
    }

    private static unsafe FileIdentity? Identity(string path)
    {
        Stat st;
        return fstatat(AT_FDCWD, path, &st, 0) == 0 ? FileIdentity.From(st) : null;
    }

    private static string StripDeleted(string path) =>
        path.EndsWith(" (deleted)", StringComparison.Ordinal) ? path[..^" (deleted)".Length] : path;

    /// <summary>Moves the vDSO and vvar pages of the new process to the saved addresses (same kernel, same sizes).</summary>
    public static void PlaceKernelMappings(Tracee tracee, List<MemoryArea> current, IReadOnlyList<MemoryAreaRecord> saved)
    {
        var moves = new List<(MemoryArea From, MemoryAreaRecord To)>();
        foreach (var kind in KernelKinds)
        {
            var want = saved.FirstOrDefault(a => a.Kind == kind);
            var have = current.FirstOrDefault(a => MemoryCapture.Classify(a) == kind);
            if (want is null && have is null) continue;
            if (want is null)
                throw new RestartException(RestartFailure.Unsupported,
                    $"the program had unmapped its {kind} mapping, which this version cannot take away from a restarted process (it issues its calls through the vDSO).");
            if (want is null || have is null || want.End - want.Start != have.Length)
                throw new RestartException(RestartFailure.Unsupported,
                    $"the kernel's {kind} mapping differs from the one at checkpoint time (checkpointed on another kernel?); the program would crash. Restart on the kernel that took the checkpoint.");
            moves.Add((have, want));
        }
        if (moves.All(m => m.From.Start == m.To.Start)) return;

        // Special mappings cannot be split, and moving one onto another destroys the other: if any
        // destination overlaps any current one, park them all in a free range first.
        var used = current.Select(a => (a.Start, a.End)).Concat(saved.Select(a => (a.Start, a.End))).ToList();
        var overlap = moves.Any(m => moves.Any(n => m.To.Start < n.From.End && n.From.Start < m.To.End && !(m.From == n.From && m.To.Start == n.From.Start)));
        var positions = moves.ToDictionary(m => m.From, m => m.From.Start);
        if (overlap)
        {
            var total = (ulong)moves.Sum(m => (long)m.From.Length);
            var park = AddressSpace.FindFree(used, total);
            foreach (var m in moves)
            {
                Move(tracee, positions[m.From], m.From.Length, park);
                positions[m.From] = park;
                park += m.From.Length;
            }
        }
        foreach (var m in moves) Move(tracee, positions[m.From], m.From.Length, m.To.Start);
    }

    private static void Move(Tracee tracee, ulong from, ulong length, ulong to)
    {
        if (from == to) return;
        // Remote calls run on a syscall instruction inside the vDSO: the core follows it.
        tracee.Remap(from, length, to);
    }

    /// <summary>Unmaps every range of user space except the given ones (the kernel mappings and the scratch page).</summary>
    public static void UnmapAllExcept(Tracee tracee, IEnumerable<(ulong Start, ulong End)> keep)
    {
        var cursor = AddressSpace.Lowest;
        foreach (var (start, end) in keep.OrderBy(k => k.Start))
        {
            if (start >= AddressSpace.Highest) break;
            if (start > cursor) tracee.CheckedSyscall("munmap", Syscalls.munmap, (long)cursor, (long)(start - cursor));
            cursor = Math.Max(cursor, end);
        }
        if (cursor < AddressSpace.Highest)
            tracee.CheckedSyscall("munmap", Syscalls.munmap, (long)cursor, (long)(AddressSpace.Highest - cursor));
    }

    /// <summary>
    /// Maps every saved area and fills in its saved pages. The context file must be open in the
    /// target as <paramref name="contextFd"/>. Returns the bytes of memory read from the context.
    /// </summary>
    public static long MapAreas(Tracee tracee, ContextImage image, ProcessImage process, int contextFd, PathRelocator relocate,
        SharedMemoryObjects sharedObjects, DescriptorBridge bridge)
    {
        var openFiles = new Dictionary<(string, bool), long>();
        var toProtect = new List<MemoryAreaRecord>();
        var mappings = new List<(MemoryAreaRecord Area, RemoteCall Call)>();
        var fills = new List<(MemoryAreaRecord Area, PagesImage Pages)>();
        long bytes = 0;
        try
        {
            foreach (var area in process.Map.Areas)
            {
                if (area.Kind is MemoryAreaKind.Vdso or MemoryAreaKind.Vvar or MemoryAreaKind.VvarVclock or MemoryAreaKind.Vsyscall or MemoryAreaKind.Special)
                    continue;
                var pages = process.Pages.FirstOrDefault(p => p.Record.AreaStart == area.Start);
                var prot = Protection(area.Protection);
                var mapProt = pages is null ? prot : prot | PROT_WRITE;
                var length = (long)(area.End - area.Start);
                var shared = area.Protection[3] == 's';

                long fd = -1, offset = 0, flags = MAP_FIXED;
                switch (area.Kind)
                {
                    case MemoryAreaKind.PrivateFile or MemoryAreaKind.SharedFile when area.SavedFileKey is not null && sharedObjects.Contains(area.SavedFileKey):
                        // A memfd or unlinked file that lives on as one object: mapped itself, not a copy.
                        if (!openFiles.TryGetValue((area.SavedFileKey, true), out fd))
                            openFiles[(area.SavedFileKey, true)] = fd = bridge.Fetch(sharedObjects.EngineFd(area.SavedFileKey));
                        if (shared && !AreaFlagsState.MayWrite(area))
                            fd = ReadOnlyCopy(tracee, openFiles, area.SavedFileKey, fd);
                        offset = (long)area.Offset;
                        flags |= shared ? MAP_SHARED : MAP_PRIVATE;
                        break;
                    case MemoryAreaKind.PrivateFile or MemoryAreaKind.SharedFile when area.SavedFileKey is not null:
                        var content = process.FileContents.FirstOrDefault(f => f.Record.Key == area.SavedFileKey)
                            ?? image.FileContents.First(f => f.Record.Key == area.SavedFileKey);
                        if (content.Source != process.Source)
                            throw new RestartException(RestartFailure.ContextInvalid, $"the saved copy of {area.Path} is not in the context file of process {process.Pid}.");
                        if (content.DataLength == 0)
                        {
                            // An empty file has no data to map from the context: an empty memfd stands
                            // in (.NET maps one, PROT_NONE, to probe for memfd support).
                            fd = EmptyFileInTarget(tracee, openFiles, area);
                            offset = (long)area.Offset;
                            flags |= shared ? MAP_SHARED : MAP_PRIVATE;
                            break;
                        }
                        if (content.DataOffset < 0 || content.DataOffset % 4096 != 0)
                            throw new RestartException(RestartFailure.Unsupported,
                                $"the saved copy of {area.Path} is not page-aligned in the context file (was it written to a pipe?); it cannot be mapped.");
                        fd = contextFd;
                        offset = content.DataOffset + (long)area.Offset;
                        flags |= MAP_PRIVATE;
                        break;
                    case MemoryAreaKind.PrivateFile or MemoryAreaKind.SharedFile:
                        var writable = shared && AreaFlagsState.MayWrite(area);
                        fd = OpenInTarget(tracee, openFiles, relocate.Map(StripDeleted(area.Path)), writable);
                        offset = (long)area.Offset;
                        flags |= shared ? MAP_SHARED : MAP_PRIVATE;
                        break;
                    case MemoryAreaKind.SharedAnonymous when area.SavedFileKey is not null && sharedObjects.Contains(area.SavedFileKey):
                        if (!openFiles.TryGetValue((area.SavedFileKey, true), out fd))
                            openFiles[(area.SavedFileKey, true)] = fd = bridge.Fetch(sharedObjects.EngineFd(area.SavedFileKey));
                        if (!AreaFlagsState.MayWrite(area))
                            fd = ReadOnlyCopy(tracee, openFiles, area.SavedFileKey, fd);
                        offset = (long)area.Offset;
                        flags |= MAP_SHARED;
                        break;
                    case MemoryAreaKind.SharedAnonymous:
                        flags |= MAP_SHARED | MAP_ANONYMOUS;
                        break;
                    default:
                        flags |= MAP_PRIVATE | MAP_ANONYMOUS | (area.GrowsDown ? MAP_GROWSDOWN : 0);
                        break;
                }

                mappings.Add((area, new RemoteCall(Syscalls.mmap, (long)area.Start, length, mapProt, flags, fd, offset)));
                if (pages is not null)
                {
                    fills.Add((area, pages));
                    if (mapProt != prot) toProtect.Add(area);
                }
            }

            // Every mapping in one trip, then the pages, then the final protections in another.
            var batch = new RemoteBatch();
            foreach (var m in mappings) batch.AddUnchecked("mmap", m.Call);
            var placed = tracee.Run(batch);
            for (var i = 0; i < placed.Length; i++)
            {
                var area = mappings[i].Area;
                RemoteResult.Check(placed[i], $"mmap of {area.Path} at 0x{area.Start:x} in process {tracee.Pid}");
                if ((ulong)placed[i] != area.Start) throw new InvalidOperationException($"mmap placed 0x{area.Start:x} at 0x{placed[i]:x}");
            }
            foreach (var (area, pages) in fills.Where(f => f.Pages.DataLength > SmallPages)) bytes += FillPages(tracee, area, pages, contextFd);
            bytes += CopySmallPages(tracee, fills.Where(f => f.Pages.DataLength <= SmallPages).ToList());
            var protections = new RemoteBatch();
            foreach (var a in toProtect)
                protections.Add($"mprotect of 0x{a.Start:x}", new RemoteCall(Syscalls.mprotect, (long)a.Start, (long)(a.End - a.Start), Protection(a.Protection)));
            tracee.Run(protections);
            AreaFlagsState.Restore(tracee, mappings.Select(m => m.Area));
        }
        finally
        {
            foreach (var fd in openFiles.Values) tracee.Syscall(Syscalls.close, fd);
        }
        return bytes;
    }

    private static long FillPages(Tracee tracee, MemoryAreaRecord area, PagesImage pages, int contextFd)
    {
        if (pages.DataOffset < 0)
            throw new RestartException(RestartFailure.Unsupported, "the context's page data has no file offset (it was read from a pipe); restart from a regular file.");
        var source = pages.DataOffset;
        foreach (var run in pages.Record.Runs)
        {
            var address = (long)area.Start + run[0] * 4096;
            var remaining = run[1] * 4096;
            while (remaining > 0)
            {
                var chunk = Math.Min(remaining, MaxReadChunk);
                var n = tracee.CheckedSyscall($"pread64 of saved pages into 0x{address:x}", Syscalls.pread64, contextFd, address, chunk, source);
                if (n <= 0) throw new RestartException(RestartFailure.ContextInvalid, $"the context file ended inside the pages of {area.Path} at 0x{address:x}.");
                address += n;
                source += n;
                remaining -= n;
            }
        }
        return source - pages.DataOffset;
    }

    private const int SmallPages = 256 * 1024;

    /// <summary>
    /// Small page records are cheaper to copy from the engine than to have the process read them (a
    /// remote call per run): a process has many small areas, thread stacks above all. They are read
    /// from the context file and written by the engine, 1024 runs a call (ProcessMemory.WriteRanges).
    /// </summary>
    private static unsafe long CopySmallPages(Tracee tracee, List<(MemoryAreaRecord Area, PagesImage Pages)> small)
    {
        if (small.Count == 0) return 0;
        const int MaxIovecs = 1024;
        var total = small.Sum(x => x.Pages.DataLength);
        // Native memory: a managed buffer this size lands on the large object heap, and the
        // collection it can set off costs more than the whole copy.
        var data = (byte*)NativeMemory.Alloc((nuint)total);
        byte* span = null;
        var spanRoom = 0;
        try
        {
            var ranges = new List<(ulong Remote, long Local, int Length)>();
            long at = 0;
            foreach (var group in small.GroupBy(x => x.Pages.Source))
            {
                using var context = File.OpenHandle(group.Key, FileMode.Open, FileAccess.Read);
                var inFileOrder = group.OrderBy(x => x.Pages.DataOffset).ToList();
                if (inFileOrder[0].Pages.DataOffset < 0)
                    throw new RestartException(RestartFailure.Unsupported, "the context's page data has no file offset (it was read from a pipe); restart from a regular file.");
                // Records that lie close together in the file (thread stacks, one after the other) are read in one call.
                for (var first = 0; first < inFileOrder.Count;)
                {
                    var start = inFileOrder[first].Pages.DataOffset;
                    var last = first;
                    while (last + 1 < inFileOrder.Count && inFileOrder[last + 1].Pages.DataOffset - End(inFileOrder[last].Pages) <= 64 * 1024
                           && End(inFileOrder[last + 1].Pages) - start <= 16 << 20)
                        last++;
                    var length = (int)(End(inFileOrder[last].Pages) - start);
                    if (length > spanRoom)
                    {
                        NativeMemory.Free(span);
                        span = (byte*)NativeMemory.Alloc((nuint)length);
                        spanRoom = length;
                    }
                    if (RandomAccess.Read(context, new Span<byte>(span, length), start) != length)
                        throw new RestartException(RestartFailure.ContextInvalid, $"the context file ended inside saved pages at byte {start}.", group.Key);
                    for (var i = first; i <= last; i++)
                    {
                        var (area, pages) = inFileOrder[i];
                        new ReadOnlySpan<byte>(span + (pages.DataOffset - start), (int)pages.DataLength).CopyTo(new Span<byte>(data + at, (int)pages.DataLength));
                        foreach (var run in pages.Record.Runs)
                        {
                            var bytes = (int)(run[1] * 4096);
                            ranges.Add((area.Start + (ulong)run[0] * 4096, at, bytes));
                            at += bytes;
                        }
                    }
                    first = last + 1;
                }
            }
            var remote = ranges.Select(r => (r.Remote, r.Length)).ToArray();
            for (var first = 0; first < ranges.Count; first += MaxIovecs)
            {
                var count = Math.Min(MaxIovecs, ranges.Count - first);
                var bytes = ranges.Skip(first).Take(count).Sum(r => (long)r.Length);
                ProcessMemory.WriteRanges(tracee.Pid, remote.AsSpan(first, count), new ReadOnlySpan<byte>(data + ranges[first].Local, (int)bytes));
            }
        }
        finally
        {
            NativeMemory.Free(data);
            NativeMemory.Free(span);
        }
        return total;
    }

    private static long EmptyFileInTarget(Tracee tracee, Dictionary<(string, bool), long> cache, MemoryAreaRecord area)
    {
        var key = ("empty:" + area.SavedFileKey, false);
        if (cache.TryGetValue(key, out var fd)) return fd;
        var name = StripDeleted(area.Path);
        name = name.StartsWith("/memfd:", StringComparison.Ordinal) ? name[7..] : Path.GetFileName(name);
        using (var scratch = tracee.Scratch())
            fd = tracee.CheckedSyscall($"memfd_create for the empty {area.Path}", Syscalls.memfd_create,
                scratch.String(name.Length > 240 ? name[..240] : name), MFD_CLOEXEC);
        cache[key] = fd;
        return fd;
    }

    /// <summary>
    /// A read-only description of a shared object the target holds as <paramref name="fd"/>: an area
    /// whose file was read-only (no VM_MAYWRITE) must not become one that mprotect could make writable.
    /// </summary>
    private static long ReadOnlyCopy(Tracee tracee, Dictionary<(string, bool), long> cache, string key, long fd)
    {
        if (cache.TryGetValue((key, false), out var readOnly)) return readOnly;
        using (var scratch = tracee.Scratch())
            readOnly = tracee.CheckedSyscall($"read-only reopen of the shared memory {key}", Syscalls.openat, AT_FDCWD,
                scratch.String($"/proc/self/fd/{fd}"), O_RDONLY | O_CLOEXEC, 0);
        cache[(key, false)] = readOnly;
        return readOnly;
    }

    private static long End(PagesImage pages) => pages.DataOffset + pages.DataLength;

    private static long OpenInTarget(Tracee tracee, Dictionary<(string, bool), long> cache, string path, bool writable)
    {
        if (cache.TryGetValue((path, writable), out var fd)) return fd;
        var flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC;
        using (var scratch = tracee.Scratch())
            fd = tracee.Syscall(Syscalls.openat, AT_FDCWD, scratch.String(path), flags, 0);
        if (RemoteResult.Failed(fd, out var errno))
            throw new RestartException(RestartFailure.FileMissing, $"cannot open {path} in the restarted process: {Marshal.GetPInvokeErrorMessage((int)errno)}.", path);
        cache[(path, writable)] = fd;
        return fd;
    }

    public static long Protection(string protection) =>
        (protection[0] == 'r' ? PROT_READ : 0) | (protection[1] == 'w' ? PROT_WRITE : 0) | (protection[2] == 'x' ? PROT_EXEC : 0);
}
