namespace CrCheckpoint.Engine.Native;

/// <summary>struct flock of fcntl(2) on x86-64: l_type, l_whence, l_start, l_len, l_pid.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FileLockArgs
{
    public short Type;
    public short Whence;
    public long Start;
    public long Length;
    public int Pid;
}

/// <summary>struct f_owner_ex of F_GETOWN_EX/F_SETOWN_EX.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FileOwnerEx
{
    public int Type;
    public int Pid;
}

internal static partial class Interop
{
    public const int F_GETFD = 1, F_SETFD = 2, F_GETFL = 3, F_SETFL = 4, F_SETLK = 6, F_SETSIG = 10, F_GETSIG = 11,
        F_SETOWN_EX = 15, F_GETOWN_EX = 16, F_OFD_SETLK = 37, F_SETLEASE = 1024, F_GETLEASE = 1025;
    public const short F_RDLCK = 0, F_WRLCK = 1, F_UNLCK = 2;
    public const int LOCK_SH = 1, LOCK_EX = 2, LOCK_NB = 4;
    public const int O_ASYNC = 0x2000;

    /// <summary>The status flags F_SETFL can change; the others (access mode, O_SYNC...) come from open(2) alone.</summary>
    public const int SettableStatusFlags = O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME;

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    public static unsafe partial int fcntl(int fd, int cmd, void* arg);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int flock(int fd, int operation);
}
