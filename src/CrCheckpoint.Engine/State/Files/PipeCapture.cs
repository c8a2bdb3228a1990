using CrCheckpoint.Engine.Native;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>
/// Reads what is in flight in a pipe without taking it out: the engine pulls a read end in with
/// pidfd_getfd and tee()s its contents into a scratch pipe of the same capacity, then reads that.
/// The processes are frozen, so the pipe cannot change meanwhile.
/// </summary>
public static unsafe class PipeCapture
{
    public static (PipeDataRecord Meta, byte[] Data) Capture(int pid, int readFd, ulong inode)
    {
        int local = -1;
        var scratch = stackalloc int[2] { -1, -1 };
        try
        {
            local = ForeignDescriptor.Copy(pid, readFd);
            var capacity = ErrnoCheck.Check(fcntl(local, F_GETPIPE_SZ, 0), "F_GETPIPE_SZ");
            ErrnoCheck.Check(pipe2(scratch, O_NONBLOCK | O_CLOEXEC), "pipe2");
            // The scratch pipe must hold all that is in flight, or tee() copies part of it and the rest is lost.
            if (fcntl(scratch[1], F_SETPIPE_SZ, capacity) < capacity)
                throw new NativeException($"F_SETPIPE_SZ({capacity}) for the copy of pipe:[{inode}]", ErrnoCheck.LastErrno);
            int inFlight;
            ErrnoCheck.Check(ioctl(local, FIONREAD, &inFlight), $"FIONREAD of pipe:[{inode}]");
            var n = tee(local, scratch[1], (nuint)capacity, SPLICE_F_NONBLOCK);
            if (n < 0 && ErrnoCheck.LastErrno != (int)Errno.EAGAIN)
                throw new NativeException($"tee of pipe:[{inode}]", ErrnoCheck.LastErrno);
            if (Math.Max(0, n) != inFlight)
                throw new NativeException($"tee of pipe:[{inode}] copied {Math.Max(0, n)} of its {inFlight} bytes in flight", (int)Errno.EIO);
            var data = new byte[Math.Max(0, (int)n)];
            fixed (byte* p = data)
            {
                for (var done = 0; done < data.Length;)
                {
                    var r = read(scratch[0], p + done, (nuint)(data.Length - done));
                    if (r <= 0) throw new NativeException($"reading the copy of pipe:[{inode}]", r == 0 ? (int)Errno.EIO : ErrnoCheck.LastErrno);
                    done += (int)r;
                }
            }
            return (new PipeDataRecord { Inode = inode, Capacity = capacity }, data);
        }
        finally
        {
            if (local >= 0) close(local);
            if (scratch[0] >= 0) close(scratch[0]);
            if (scratch[1] >= 0) close(scratch[1]);
        }
    }
}
