using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Tracing;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Security;

/// <summary>
/// Reads a thread's seccomp filters through ptrace and installs them again at restart, in the
/// thread itself and after every other remote call it makes: a filter may forbid the very calls a
/// rebuild needs. Without this, a sandboxed program would come back without its sandbox.
/// </summary>
public static unsafe class SeccompState
{
    private const int PR_SET_NO_NEW_PRIVS = 38, PR_SET_SECCOMP = 22, SECCOMP_MODE_STRICT = 1, SECCOMP_SET_MODE_FILTER = 1;

    /// <summary>
    /// The ptrace options a checkpoint seizes <paramref name="pid"/> with for its sandbox:
    /// PTRACE_O_SUSPEND_SECCOMP when any of its threads runs under seccomp. A strict-mode thread may
    /// make no call but read, write, exit and sigreturn, and a filter may forbid what a capture needs
    /// (mmap of the scratch page, rt_sigaction...): the kernel would kill the thread at the first
    /// remote call. Suspended, the sandbox still holds for the program, which runs none of its own
    /// code while it is traced. Needs CAP_SYS_ADMIN, as reading the filters does.
    /// </summary>
    public static int FreezeOptions(int pid)
    {
        try
        {
            foreach (var tid in Proc.ProcTasks.ThreadIds(pid))
                if (Proc.ProcStatus.Read(pid, tid)["Seccomp"] is { } mode && mode != "0")
                    return PTRACE_O_SUSPEND_SECCOMP;
        }
        catch (IOException) { }
        return 0;
    }

    /// <summary>
    /// Null for a thread without a sandbox, the usual case. no_new_privs and strict mode are taken
    /// from the process (they are set before threads are started, and strict mode leaves a process
    /// no room for threads); filters are asked of each thread, which the kernel answers with EINVAL
    /// at once for a thread without any.
    /// </summary>
    public static SeccompRecord? Capture(Tracee thread, bool noNewPrivileges, int processMode)
    {
        var filters = new List<SeccompFilterRecord>();
        for (var index = 0; ; index++)
        {
            if (thread.GetSeccompFilter(index, out var errno) is not { } program)
            {
                if (errno == Errno.ENOENT || (errno == Errno.EINVAL && index == 0)) break;
                // Without CAP_SYS_ADMIN the question cannot be asked: the process's own status says
                // whether there is anything to read.
                if (errno is Errno.EACCES or Errno.EPERM && index == 0 && processMode != 2) break;
                throw new UnsupportedStateException(thread.Pid,
                    $"thread {thread.Tid} runs under a seccomp filter that cannot be read: {Marshal.GetPInvokeErrorMessage((int)errno)} (CAP_SYS_ADMIN is needed)");
            }
            // Without its flags a filter would come back without SECCOMP_FILTER_FLAG_LOG or the like: silently different.
            if (thread.GetSeccompFilterFlags(index, out errno) is not { } flags)
                throw new UnsupportedStateException(thread.Pid,
                    $"the flags of seccomp filter {index} of thread {thread.Tid} cannot be read: {Marshal.GetPInvokeErrorMessage((int)errno)}");
            filters.Add(new SeccompFilterRecord { Flags = flags, Program = program });
        }
        filters.Reverse();
        var mode = filters.Count > 0 ? 2 : processMode == 1 ? 1 : 0;
        if (!noNewPrivileges && mode == 0) return null;
        return new SeccompRecord { NoNewPrivileges = noNewPrivileges, Mode = mode, Filters = filters };
    }

    /// <summary>
    /// The thread's last remote calls: no_new_privs, then its filters oldest first (each allowed by
    /// those before it, as when the program installed them), or strict mode. Pointer arguments go
    /// below the red zone of the stack the thread will run on, memory the thread does not use.
    /// </summary>
    /// <summary>
    /// How many filters, oldest first, every thread of the process has in common: a program that
    /// installed them before starting its threads (or with SECCOMP_FILTER_FLAG_TSYNC) shares them, and
    /// a later TSYNC only works between threads whose filters descend from the same ones. 0 when a
    /// thread has none.
    /// </summary>
    public static int SharedFilters(IEnumerable<SeccompRecord?> sandboxes)
    {
        var all = sandboxes.ToList();
        if (all.Count < 2 || all.Any(s => s is null || s.Mode != 2)) return 0;
        var first = all[0]!.Filters;
        var count = 0;
        while (count < first.Count && all.All(s => s!.Filters.Count > count &&
               s.Filters[count].Flags == first[count].Flags && s.Filters[count].Program.AsSpan().SequenceEqual(first[count].Program)))
            count++;
        return count;
    }

    public static void Restore(Tracee thread, SeccompRecord sandbox, ulong stackPointer, int shared = 0, bool leader = true)
    {
        const long SECCOMP_FILTER_FLAG_TSYNC = 1;
        if (sandbox.NoNewPrivileges)
            thread.CheckedSyscall("prctl(PR_SET_NO_NEW_PRIVS)", Syscalls.prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        if (sandbox.Mode == SECCOMP_MODE_STRICT)
        {
            thread.CheckedSyscall("prctl(PR_SET_SECCOMP, strict)", Syscalls.prctl, PR_SET_SECCOMP, SECCOMP_MODE_STRICT);
            return;
        }
        // The filters all threads share are installed once, by the main thread, and synchronised to the
        // others (still stopped, without filters of their own yet), so that they are one filter again.
        for (var i = leader ? 0 : shared; i < sandbox.Filters.Count; i++)
        {
            var filter = sandbox.Filters[i];
            var flags = (long)filter.Flags | (leader && i < shared ? SECCOMP_FILTER_FLAG_TSYNC : 0);
            // struct sock_fprog: the instruction count (u16, padded to 8), then a pointer to them.
            var at = (stackPointer - 128 - (ulong)filter.Program.Length - 16) & ~15UL;
            var header = new byte[16];
            BitConverter.TryWriteBytes(header, (ushort)(filter.Program.Length / 8));
            BitConverter.TryWriteBytes(header.AsSpan(8), at + 16);
            ProcessMemory.Write(thread.Pid, at, header);
            ProcessMemory.Write(thread.Pid, at + 16, filter.Program);
            var r = thread.Syscall(Syscalls.seccomp, SECCOMP_SET_MODE_FILTER, flags, (long)at);
            // With TSYNC, a positive result is the id of a thread that could not be synchronised.
            RemoteResult.Check(r, $"seccomp(SECCOMP_SET_MODE_FILTER) in process {thread.Pid}");
            if (r != 0)
                throw new InvalidOperationException($"seccomp(SECCOMP_SET_MODE_FILTER, TSYNC) in process {thread.Pid}: thread {r} could not take the shared filter");
        }
    }
}
