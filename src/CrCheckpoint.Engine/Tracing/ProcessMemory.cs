using CrCheckpoint.Engine.Native;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.Tracing;

/// <summary>
/// Moves bytes in and out of another process. process_vm_readv/writev is the fast path; pages the
/// target itself may not touch (PROT_NONE, read-only) go through /proc/PID/mem, which the kernel
/// lets a tracer use regardless of protections.
/// </summary>
public static unsafe class ProcessMemory
{
    public static void Read(int pid, ulong address, Span<byte> destination)
    {
        fixed (byte* p = destination)
        {
            var done = 0;
            while (done < destination.Length)
            {
                var local = new IoVec { Base = (nint)(p + done), Length = (nuint)(destination.Length - done) };
                var remote = new IoVec { Base = (nint)(address + (ulong)done), Length = local.Length };
                var n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
                if (n <= 0)
                {
                    ReadThroughProcMem(pid, address + (ulong)done, destination[done..]);
                    return;
                }
                done += (int)n;
            }
        }
    }

    /// <summary>
    /// Fills <paramref name="destination"/> from many remote ranges, in order, their bytes one after
    /// the other: one process_vm_readv per 1024 ranges, /proc/PID/mem for what it cannot read
    /// (or for everything, when <paramref name="direct"/> is false: areas the target cannot read itself).
    /// </summary>
    public static void ReadRanges(int pid, ReadOnlySpan<(ulong Address, int Length)> ranges, Span<byte> destination, bool direct = true) =>
        Transfer(pid, ranges, destination, write: false, direct);

    /// <summary>Writes <paramref name="source"/> over many remote ranges, in order, the way <see cref="ReadRanges"/> reads.</summary>
    public static void WriteRanges(int pid, ReadOnlySpan<(ulong Address, int Length)> ranges, ReadOnlySpan<byte> source) =>
        Transfer(pid, ranges, MemoryMarshal.CreateSpan(ref MemoryMarshal.GetReference(source), source.Length), write: true, direct: true);

    private const int MaxIovecs = 1024;

    private static void Transfer(int pid, ReadOnlySpan<(ulong Address, int Length)> ranges, Span<byte> local, bool write, bool direct)
    {
        var localVecs = stackalloc IoVec[MaxIovecs];
        var remoteVecs = stackalloc IoVec[MaxIovecs];
        fixed (byte* data = local)
        {
            long at = 0;
            for (var first = 0; first < ranges.Length; first += MaxIovecs)
            {
                var count = Math.Min(MaxIovecs, ranges.Length - first);
                var firstAt = at;
                for (var i = 0; i < count; i++)
                {
                    var (address, length) = ranges[first + i];
                    localVecs[i] = new IoVec { Base = (nint)(data + at), Length = (nuint)length };
                    remoteVecs[i] = new IoVec { Base = (nint)address, Length = (nuint)length };
                    at += length;
                }
                if (at > local.Length) throw new ArgumentException($"the ranges hold {at} bytes, the local buffer {local.Length}");
                if (direct)
                {
                    var n = write
                        ? process_vm_writev(pid, localVecs, (nuint)count, remoteVecs, (nuint)count, 0)
                        : process_vm_readv(pid, localVecs, (nuint)count, remoteVecs, (nuint)count, 0);
                    if (n == at - firstAt) continue;
                }
                // Pages the target cannot read or write itself (PROT_NONE, read-only): /proc/PID/mem.
                for (var i = 0; i < count; i++)
                {
                    var piece = new Span<byte>((void*)localVecs[i].Base, (int)localVecs[i].Length);
                    if (write) WriteThroughProcMem(pid, (ulong)remoteVecs[i].Base, piece);
                    else ReadThroughProcMem(pid, (ulong)remoteVecs[i].Base, piece);
                }
            }
        }
    }

    private static void ReadThroughProcMem(int pid, ulong address, Span<byte> destination)
    {
        var fd = open($"/proc/{pid}/mem", O_RDONLY | O_CLOEXEC, 0);
        if (fd == -1) throw new NativeException($"open /proc/{pid}/mem", ErrnoCheck.LastErrno);
        try
        {
            fixed (byte* p = destination)
            {
                var done = 0;
                while (done < destination.Length)
                {
                    var n = pread(fd, p + done, (nuint)(destination.Length - done), (long)(address + (ulong)done));
                    if (n <= 0)
                        throw new NativeException($"reading {destination.Length - done} bytes at 0x{address + (ulong)done:x} of process {pid}",
                            n == 0 ? (int)Errno.EFAULT : ErrnoCheck.LastErrno);
                    done += (int)n;
                }
            }
        }
        finally { close(fd); }
    }

    public static void Write(int pid, ulong address, ReadOnlySpan<byte> source)
    {
        fixed (byte* p = source)
        {
            var local = new IoVec { Base = (nint)p, Length = (nuint)source.Length };
            var remote = new IoVec { Base = (nint)address, Length = (nuint)source.Length };
            var n = process_vm_writev(pid, &local, 1, &remote, 1, 0);
            if (n == source.Length) return;
        }
        WriteThroughProcMem(pid, address, source);
    }

    private static void WriteThroughProcMem(int pid, ulong address, ReadOnlySpan<byte> source)
    {
        var fd = open($"/proc/{pid}/mem", O_RDWR | O_CLOEXEC, 0);
        if (fd == -1) throw new NativeException($"open /proc/{pid}/mem", ErrnoCheck.LastErrno);
        try
        {
            fixed (byte* p = source)
            {
                var done = 0;
                while (done < source.Length)
                {
                    var n = pwrite(fd, p + done, (nuint)(source.Length - done), (long)(address + (ulong)done));
                    if (n <= 0)
                        throw new NativeException($"writing at 0x{address + (ulong)done:x} of process {pid}",
                            n == 0 ? (int)Errno.EFAULT : ErrnoCheck.LastErrno);
                    done += (int)n;
                }
            }
        }
        finally { close(fd); }
    }
}
