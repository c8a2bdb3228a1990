namespace CrCheckpoint.Engine.Native;

/// <summary>The errno values the engine reacts to by name; any other value is reported as is.</summary>
public enum Errno
{
    EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, EBADF = 9, ECHILD = 10, EAGAIN = 11,
    ENOMEM = 12, EACCES = 13, EFAULT = 14, EBUSY = 16, EEXIST = 17, EXDEV = 18, ENOTDIR = 20,
    EISDIR = 21, EINVAL = 22, ENFILE = 23, EMFILE = 24, ENOSPC = 28, ESPIPE = 29, EROFS = 30,
    EPIPE = 32, ENOSYS = 38, ELOOP = 40, ENODATA = 61, EOPNOTSUPP = 95,
}

/// <summary>A failed system call, with its errno by name. Remote calls in a traced process return -errno, read by Tracing.RemoteResult.</summary>
public sealed class NativeException : IOException
{
    public NativeException(string operation, int errno)
        : base($"{operation}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})")
    {
        Operation = operation;
        Errno = (Errno)errno;
        HResult = errno;
    }

    public string Operation { get; }
    public Errno Errno { get; }
}

internal static class ErrnoCheck
{
    /// <summary>Throws for a -1 return with the errno of the last P/Invoke.</summary>
    public static long Check(long result, string operation)
    {
        if (result == -1) throw new NativeException(operation, Marshal.GetLastPInvokeError());
        return result;
    }

    public static int Check(int result, string operation)
    {
        if (result == -1) throw new NativeException(operation, Marshal.GetLastPInvokeError());
        return result;
    }

    public static int LastErrno => Marshal.GetLastPInvokeError();
}
