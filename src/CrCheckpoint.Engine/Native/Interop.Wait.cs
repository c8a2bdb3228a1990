namespace CrCheckpoint.Engine.Native;

internal static partial class Interop
{
    public const int WNOHANG = 1, WUNTRACED = 2, WCONTINUED = 8, WNOWAIT = 0x01000000, __WALL = 0x40000000;

    [LibraryImport("libc", SetLastError = true)]
    public static unsafe partial int waitpid(int pid, int* status, int options);
}

/// <summary>Decodes a wait status the way the W* macros of sys/wait.h do.</summary>
public readonly record struct WaitStatus(int Raw)
{
    public bool Exited => (Raw & 0x7f) == 0;
    public int ExitCode => (Raw >> 8) & 0xff;
    public bool Signaled => ((sbyte)((Raw & 0x7f) + 1) >> 1) > 0;
    public int TermSignal => Raw & 0x7f;
    public bool Stopped => (Raw & 0xff) == 0x7f;
    public int StopSignal => (Raw >> 8) & 0xff;
    /// <summary>The PTRACE_EVENT_* in the high byte of a ptrace stop, 0 for a plain signal stop.</summary>
    public int PtraceEvent => (Raw >> 16) & 0xff;

    public override string ToString() =>
        Exited ? $"exited {ExitCode}" : Signaled ? $"killed by signal {TermSignal}" :
        Stopped ? $"stopped by signal {StopSignal} event {PtraceEvent}" : $"status 0x{Raw:x}";
}

internal static partial class Interop
{
    public const int P_PID = 1, WEXITED = 4;
    public const short POLLIN = 1;

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", SetLastError = true)]
    public static unsafe partial int poll(PollFd* fds, nuint count, int timeout);

    /// <summary>siginfo_t is 128 bytes; waitid fills si_pid at 16, si_status at 24, si_code at 8.</summary>
    [LibraryImport("libc", SetLastError = true)]
    public static unsafe partial int waitid(int idtype, int id, byte* info, int options);
}
