namespace CrCheckpoint.Engine.Schema;

/// <summary>The MemoryMap record: every area of one process's address space, in address order.</summary>
public sealed class MemoryMapRecord
{
    public int Pid { get; init; }
    public List<MemoryAreaRecord> Areas { get; init; } = [];
}

public sealed class MemoryAreaRecord
{
    public ulong Start { get; init; }
    public ulong End { get; init; }
    /// <summary>As in /proc/PID/maps: "rw-p", "r-xs"...</summary>
    public string Protection { get; init; } = "";
    public MemoryAreaKind Kind { get; init; }
    public ulong Offset { get; init; }
    public string Path { get; init; } = "";
    public FileIdentity? File { get; init; }
    /// <summary>Key of the FileContent record holding the whole file, when the file travels in the context.</summary>
    public string? SavedFileKey { get; init; }
    /// <summary>Pages whose contents follow in a MemoryPages record for this area.</summary>
    public long SavedPages { get; init; }
    public bool GrowsDown { get; init; }
    /// <summary>
    /// The area's vma flags (smaps VmFlags) that a restart gives back and checks: the madvise ones
    /// (rr sr dc mg hg nh dd wf), mlock (lo lf), mseal (sl) and, for shared areas, mw (the file was
    /// opened for writing). Null in older files and for the kernel's own areas.
    /// </summary>
    public string[]? VmFlags { get; init; }
    /// <summary>Pairs [first page, page count] of guard pages (MADV_GUARD_INSTALL); null when none.</summary>
    public long[][]? GuardPages { get; init; }
}

public enum MemoryAreaKind
{
    Anonymous,
    Heap,
    Stack,
    /// <summary>A private mapping of a file: pages come from the file, written pages from the context.</summary>
    PrivateFile,
    /// <summary>A shared mapping of a file: the file holds the data.</summary>
    SharedFile,
    /// <summary>MAP_SHARED|MAP_ANONYMOUS, /dev/zero, System V shared memory or memfd: shmem, saved in the context.</summary>
    SharedAnonymous,
    Vdso,
    Vvar,
    VvarVclock,
    Vsyscall,
    /// <summary>Another kernel-owned mapping ([uprobes]...): not saved.</summary>
    Special,
}
