namespace CrCheckpoint.Engine.State.Memory;

/// <summary>Finds room in an address space described by the ranges in use.</summary>
public static class AddressSpace
{
    public const ulong Lowest = 0x10000;          // mmap_min_addr
    public const ulong Highest = 0x7fff_ffff_f000; // x86-64 user space with 4-level paging

    /// <summary>A free range of the given size, with a guard page on either side, searched from the top.</summary>
    public static ulong FindFree(IEnumerable<(ulong Start, ulong End)> used, ulong size)
    {
        var ranges = used.Where(r => r.End > r.Start && r.Start < Highest).OrderByDescending(r => r.Start).ToList();
        var top = Highest - 0x1000_0000; // stay clear of where stacks live
        foreach (var r in ranges)
        {
            if (r.End <= top && top - r.End >= size + 0x2000) return top - size - 0x1000;
            top = Math.Min(top, r.Start);
        }
        if (top > Lowest + size + 0x2000) return top - size - 0x1000;
        throw new InvalidOperationException($"no free range of {size} bytes in the address space");
    }
}
