namespace CrCheckpoint.Engine.Native;

/// <summary>x86-64 system call numbers the engine issues directly or inside a target.</summary>
public static class Syscalls
{
    public const long read = 0, write = 1, open = 2, close = 3, lseek = 8, mmap = 9, mprotect = 10, munmap = 11, madvise = 28,
        brk = 12, rt_sigaction = 13, rt_sigprocmask = 14, pread64 = 17, pwrite64 = 18, mremap = 25, dup = 32, dup2 = 33,
        getitimer = 36, setitimer = 38, getpid = 39, clone = 56, exit = 60, kill = 62, fcntl = 72, chdir = 80,
        fchdir = 81, flock = 73, umask = 95, getrlimit = 97, ptrace = 101, setpgid = 109, setsid = 112, sigaltstack = 131,
        personality = 135, prctl = 157, arch_prctl = 158, chroot = 161, gettid = 186, set_tid_address = 218,
        restart_syscall = 219, membarrier = 324, nanosleep = 35, clock_nanosleep = 230, timer_gettime = 224, exit_group = 231, tgkill = 234, openat = 257,
        set_robust_list = 273, get_robust_list = 274, dup3 = 292, pipe2 = 293, prlimit64 = 302, kcmp = 312,
        timer_create = 222, timer_settime = 223, memfd_create = 319, rseq = 334, pidfd_send_signal = 424, pidfd_open = 434, clone3 = 435,
        pidfd_getfd = 438, close_range = 436, rt_sigqueueinfo = 129, rt_tgsigqueueinfo = 297, setresuid = 117,
        setresgid = 119, setgroups = 116, fchmod = 91, ioctl = 16, epoll_ctl = 233, timerfd_create = 283,
        timerfd_settime = 286, signalfd4 = 289, eventfd2 = 290, epoll_create1 = 291, inotify_init1 = 294,
        inotify_add_watch = 254, inotify_rm_watch = 255, open_by_handle_at = 304, seccomp = 317;
}

internal static partial class Interop
{
    // Fixed-arity view of the variadic syscall(2); the x86-64 ABI passes these in the same registers.
    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    public static partial long syscall(long number, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0, long a6 = 0);

    public const int RLIM_NLIMITS = 16;

    [LibraryImport("libc", SetLastError = true)]
    public static unsafe partial int prlimit(int pid, int resource, RLimit* newLimit, RLimit* oldLimit);
}

[StructLayout(LayoutKind.Sequential)]
public struct RLimit
{
    public ulong Current;
    public ulong Max;
}
