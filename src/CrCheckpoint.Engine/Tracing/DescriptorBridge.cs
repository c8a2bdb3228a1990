using CrCheckpoint.Engine.Native;

namespace CrCheckpoint.Engine.Tracing;

/// <summary>
/// Hands descriptors of the engine's own process to a traced process: the target opens a pidfd
/// of the engine once (parked above every descriptor number it will need) and pulls each one in
/// with pidfd_getfd. The pulled descriptor has O_CLOEXEC set, as pidfd_getfd always does.
/// </summary>
public sealed class DescriptorBridge(Tracee tracee, int parkAbove) : IDisposable
{
    private const int F_DUPFD_CLOEXEC = 1030;
    private long _pidfd = -1;

    public long Fetch(int engineFd)
    {
        if (_pidfd < 0)
        {
            var fd = tracee.CheckedSyscall("pidfd_open", Syscalls.pidfd_open, Environment.ProcessId, 0);
            _pidfd = tracee.CheckedSyscall("fcntl(F_DUPFD_CLOEXEC)", Syscalls.fcntl, fd, F_DUPFD_CLOEXEC, parkAbove + 1);
            tracee.Syscall(Syscalls.close, fd);
        }
        return tracee.CheckedSyscall("pidfd_getfd", Syscalls.pidfd_getfd, _pidfd, engineFd, 0);
    }

    public void Dispose()
    {
        if (_pidfd >= 0) tracee.Syscall(Syscalls.close, _pidfd);
        _pidfd = -1;
    }
}
