namespace CrCheckpoint.Engine.State.Memory;

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
