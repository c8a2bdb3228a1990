using CrCheckpoint.Engine.Native;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.Proc;

/// <summary>
/// A small /proc file read with one open and read: File.ReadAllText costs several times as much,
/// and a freeze reads a few files for every thread of the process.
/// </summary>
public static unsafe class ProcText
{
    private const int Room = 8192;

    /// <exception cref="FileNotFoundException">The file (its process or thread) is gone.</exception>
    public static string Read(string path)
    {
        var fd = open(path, O_RDONLY | O_CLOEXEC, 0);
        if (fd == -1)
        {
            var errno = ErrnoCheck.LastErrno;
            throw errno is (int)Errno.ENOENT or (int)Errno.ESRCH
                ? new FileNotFoundException($"{path} does not exist", path)
                : new IOException($"cannot open {path}: {Marshal.GetPInvokeErrorMessage(errno)}");
        }
        try
        {
            var buffer = stackalloc byte[Room];
            var length = 0;
            while (length < Room)
            {
                var n = (int)read(fd, buffer + length, (nuint)(Room - length));
                if (n < 0)
                {
                    var errno = ErrnoCheck.LastErrno;
                    if (errno == (int)Errno.ESRCH) throw new FileNotFoundException($"{path} is gone", path);
                    throw new IOException($"cannot read {path}: {Marshal.GetPInvokeErrorMessage(errno)}");
                }
                if (n == 0) return System.Text.Encoding.UTF8.GetString(buffer, length);
                length += n;
            }
        }
        finally
        {
            close(fd);
        }
        return File.ReadAllText(path); // larger than the room: rare, and not worth a bigger buffer on every call
    }
}
