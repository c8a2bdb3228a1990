namespace CrCheckpoint.Engine.Native;

internal static partial class Interop
{
    [LibraryImport("libc", SetLastError = true)]
    public static partial int kill(int pid, int sig);
}

/// <summary>Linux signal numbers on x86-64.</summary>
public static class Signals
{
    public const int SIGHUP = 1, SIGINT = 2, SIGQUIT = 3, SIGILL = 4, SIGTRAP = 5, SIGABRT = 6, SIGBUS = 7,
        SIGFPE = 8, SIGKILL = 9, SIGUSR1 = 10, SIGSEGV = 11, SIGUSR2 = 12, SIGPIPE = 13, SIGALRM = 14,
        SIGTERM = 15, SIGCHLD = 17, SIGCONT = 18, SIGSTOP = 19, SIGTSTP = 20, SIGTTIN = 21, SIGTTOU = 22,
        SIGRTMIN = 32, SIGRTMAX = 64;

    public static string Name(int sig) => sig switch
    {
        SIGHUP => "SIGHUP", SIGINT => "SIGINT", SIGQUIT => "SIGQUIT", SIGILL => "SIGILL", SIGTRAP => "SIGTRAP",
        SIGABRT => "SIGABRT", SIGBUS => "SIGBUS", SIGFPE => "SIGFPE", SIGKILL => "SIGKILL", SIGUSR1 => "SIGUSR1",
        SIGSEGV => "SIGSEGV", SIGUSR2 => "SIGUSR2", SIGPIPE => "SIGPIPE", SIGALRM => "SIGALRM",
        SIGTERM => "SIGTERM", 16 => "SIGSTKFLT", SIGCHLD => "SIGCHLD", SIGCONT => "SIGCONT", SIGSTOP => "SIGSTOP",
        SIGTSTP => "SIGTSTP", SIGTTIN => "SIGTTIN", SIGTTOU => "SIGTTOU", 23 => "SIGURG", 24 => "SIGXCPU",
        25 => "SIGXFSZ", 26 => "SIGVTALRM", 27 => "SIGPROF", 28 => "SIGWINCH", 29 => "SIGIO", 30 => "SIGPWR",
        31 => "SIGSYS", >= SIGRTMIN and <= SIGRTMAX => $"SIGRTMIN+{sig - SIGRTMIN}", _ => $"signal {sig}",
    };
}
