namespace CrCheckpoint.Engine.Native;

internal static partial class Interop
{
    public const int PTRACE_PEEKDATA = 2, PTRACE_POKEDATA = 5, PTRACE_CONT = 7, PTRACE_KILL = 8,
        PTRACE_SINGLESTEP = 9, PTRACE_SYSCALL = 24, PTRACE_GETREGS = 12, PTRACE_SETREGS = 13, PTRACE_DETACH = 17,
        PTRACE_SETOPTIONS = 0x4200, PTRACE_GETEVENTMSG = 0x4201, PTRACE_GETSIGINFO = 0x4202,
        PTRACE_GETREGSET = 0x4204, PTRACE_SETREGSET = 0x4205, PTRACE_SEIZE = 0x4206,
        PTRACE_INTERRUPT = 0x4207, PTRACE_LISTEN = 0x4208, PTRACE_PEEKSIGINFO = 0x4209,
        PTRACE_GETSIGMASK = 0x420a, PTRACE_SETSIGMASK = 0x420b, PTRACE_SECCOMP_GET_FILTER = 0x420c,
        PTRACE_SECCOMP_GET_METADATA = 0x420d, PTRACE_GET_RSEQ_CONFIGURATION = 0x420f;

    public const int PTRACE_O_TRACESYSGOOD = 1, PTRACE_O_TRACEFORK = 2, PTRACE_O_TRACEVFORK = 4,
        PTRACE_O_TRACECLONE = 8, PTRACE_O_TRACEEXEC = 0x10, PTRACE_O_EXITKILL = 0x100000,
        PTRACE_O_SUSPEND_SECCOMP = 0x200000;

    public const int PTRACE_EVENT_FORK = 1, PTRACE_EVENT_VFORK = 2, PTRACE_EVENT_CLONE = 3,
        PTRACE_EVENT_EXEC = 4, PTRACE_EVENT_EXIT = 6, PTRACE_EVENT_STOP = 128;

    public const int PTRACE_PEEKSIGINFO_SHARED = 1;
    public const int NT_PRSTATUS = 1, NT_X86_XSTATE = 0x202;

    // glibc's wrapper is variadic; on x86-64 passing four integer arguments matches its ABI.
    [LibraryImport("libc", EntryPoint = "ptrace", SetLastError = true)]
    public static partial long ptrace(long request, int pid, nint addr, nint data);
}

[StructLayout(LayoutKind.Sequential)]
public struct PtraceRseqConfiguration
{
    public ulong RseqAbiPointer;
    public uint RseqAbiSize;
    public uint Signature;
    public uint Flags;
    public uint Pad;
}

[StructLayout(LayoutKind.Sequential)]
public struct PtracePeekSigInfoArgs
{
    public ulong Offset;
    public uint Flags;
    public int Count;
}
