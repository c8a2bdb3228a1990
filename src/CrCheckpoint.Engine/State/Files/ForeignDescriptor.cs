using CrCheckpoint.Engine.Native;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>The engine's own copy of another process's descriptor (pidfd_open + pidfd_getfd), to look inside it.</summary>
public static class ForeignDescriptor
{
    /// <summary>A descriptor in this process for descriptor <paramref name="fd"/> of <paramref name="pid"/>; the caller closes it.</summary>
    public static int Copy(int pid, int fd)
    {
        var pidfd = (int)ErrnoCheck.Check(syscall(Syscalls.pidfd_open, pid, 0), $"pidfd_open({pid})");
        try
        {
            return (int)ErrnoCheck.Check(syscall(Syscalls.pidfd_getfd, pidfd, fd, 0), $"pidfd_getfd({pid}, {fd})");
        }
        finally
        {
            close(pidfd);
        }
    }
}
