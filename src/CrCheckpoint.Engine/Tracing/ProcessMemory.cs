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

    /// <summary>Scatter read: one call fills many local buffers from many remote ranges.</summary>
    public static long ReadV(int pid, IoVec* local, int localCount, IoVec* remote, int remoteCount)
    {
        var n = process_vm_readv(pid, local, (nuint)localCount, remote, (nuint)remoteCount, 0);
        return n;
    }

    public static void ReadThroughProcMem(int pid, ulong address, Span<byte> destination)
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

    public static void WriteThroughProcMem(int pid, ulong address, ReadOnlySpan<byte> source)
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
