namespace CrCheckpoint.Engine.Proc;

/// <summary>One line of /proc/PID/maps: a virtual memory area.</summary>
public sealed record MemoryArea(
    ulong Start, ulong End, bool Read, bool Write, bool Execute, bool Shared,
    ulong Offset, uint DevMajor, uint DevMinor, ulong Inode, string Path)
{
    public ulong Length => End - Start;
    public long Pages => (long)(Length / 4096);

    public string Protection => $"{(Read ? 'r' : '-')}{(Write ? 'w' : '-')}{(Execute ? 'x' : '-')}{(Shared ? 's' : 'p')}";

    public bool IsDeleted => Path.EndsWith(" (deleted)", StringComparison.Ordinal);

    /// <summary>Regions the kernel owns and recreates itself in every process.</summary>
    public bool IsKernelSpecial => Path is "[vdso]" or "[vvar]" or "[vvar_vclock]" or "[vsyscall]" or "[uprobes]";

    /// <summary>Shared anonymous memory lives in shmem: /dev/zero (deleted), System V segments, memfd.</summary>
    public bool IsSharedAnonymous =>
        Shared && (Inode == 0 || Path.StartsWith("/dev/zero", StringComparison.Ordinal) ||
                   Path.StartsWith("/SYSV", StringComparison.Ordinal) || Path.StartsWith("/memfd:", StringComparison.Ordinal));
}
