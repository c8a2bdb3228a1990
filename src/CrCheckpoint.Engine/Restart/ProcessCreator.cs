using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Proc;
using CrCheckpoint.Engine.Tracing;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.Restart;

/// <summary>
/// Makes the empty process a restart fills in. A stub program is spawned and seized; a remote
/// clone3 in it (CLONE_PARENT, and set_tid for the original pid) creates the new process as a
/// child of the engine, already traced. The stub is then killed. No fork in the .NET host.
/// </summary>
public static unsafe class ProcessCreator
{
    private const ulong CLONE_PARENT = 0x00008000;
    private const string StubProgram = "/bin/sleep";

    public static Tracee Create(int? pid, MessageLog log)
    {
        var stub = SpawnStub();
        Tracee? stubTracee = null;
        try
        {
            stubTracee = Tracee.Seize(stub, stub, PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_EXITKILL);
            stubTracee.UseSyscallInstructionAt(SyscallInstruction.Find(stub, ProcMaps.Read(stub)));

            // struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size,
            // tls, set_tid, set_tid_size, cgroup. exit_signal must be 0 with CLONE_PARENT.
            var args = new ulong[11];
            args[0] = CLONE_PARENT;
            var scratch = stubTracee.Scratch;
            if (pid is { } wanted)
            {
                stubTracee.WriteScratch(BitConverter.GetBytes(wanted), 128);
                args[8] = scratch + 128;
                args[9] = 1;
            }
            stubTracee.WriteScratch(MemoryMarshal.AsBytes(args.AsSpan()));
            var child = stubTracee.Syscall(Syscalls.clone3, (long)scratch, args.Length * 8);
            if (child < 0)
            {
                throw -child == (int)Errno.EEXIST
                    ? new RestartException(RestartFailure.PidInUse,
                        $"process id {pid} is in use by another process. Use -NoRestorePid to restart with a new process id.", pid?.ToString())
                    : new NativeException("clone3 in the restart stub", (int)-child);
            }
            var tracee = Tracee.Adopt((int)child, (int)child);
            tracee.UseSyscallInstructionAt(stubTracee.SyscallInstructionAddress);
            log.Add($"created process {child}{(pid is null ? "" : " with its original id")}");
            return tracee;
        }
        finally
        {
            if (stubTracee is not null) stubTracee.KillAndReap();
            else
            {
                Interop.kill(stub, Signals.SIGKILL);
                int raw;
                waitpid(stub, &raw, __WALL);
            }
        }
    }

    private const ulong SIGCHLD = 17;

    /// <summary>
    /// Forks a child inside a process being rebuilt (a remote clone3 with SIGCHLD, and set_tid for
    /// the original pid). The child is attached to us on its own (PTRACE_O_TRACEFORK); it starts as a
    /// copy of the parent, scratch page included, and is rebuilt like any other process.
    /// </summary>
    public static Tracee CreateChild(Tracee parent, int? pid)
    {
        var args = new ulong[11];
        args[4] = SIGCHLD;
        var scratch = parent.Scratch;
        if (pid is { } wanted)
        {
            parent.WriteScratch(BitConverter.GetBytes(wanted), 128);
            args[8] = scratch + 128;
            args[9] = 1;
        }
        parent.WriteScratch(MemoryMarshal.AsBytes(args.AsSpan()));
        var created = parent.Syscall(Syscalls.clone3, (long)scratch, args.Length * 8);
        if (created < 0)
        {
            throw -created == (int)Errno.EEXIST
                ? new RestartException(RestartFailure.PidInUse,
                    $"process id {pid} is in use by another process. Use -NoRestorePid to restart with new process ids.", pid?.ToString())
                : new NativeException("clone3 of a child process", (int)-created);
        }
        var child = Tracee.Adopt((int)created, (int)created);
        child.UseSyscallInstructionAt(parent.SyscallInstructionAddress);
        child.OwnScratchCopyAt(scratch);
        return child;
    }

    /// <summary>
    /// Ends a recreated process the way the zombie it stands for ended: exit code or signal. Its
    /// exit is reported to us first (we trace it); once we have seen it, it waits as a zombie for
    /// its restored parent to reap it.
    /// </summary>
    public static unsafe void BecomeZombie(Tracee tracee, int waitStatus)
    {
        var signal = waitStatus & 0x7f;
        try
        {
            if (signal == 0)
            {
                tracee.Syscall(Syscalls.exit_group, (waitStatus >> 8) & 0xff);
                return;
            }
            var noCore = new RLimit();
            prlimit(tracee.Pid, 4 /* RLIMIT_CORE */, &noCore, null);
            tracee.DieOf(signal);
        }
        catch (TraceeGoneException)
        {
        }
    }

    private const ulong ThreadFlags = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000; // VM FS FILES SIGHAND THREAD SYSVSEM

    /// <summary>
    /// Adds a thread to a process being rebuilt: a remote clone3 in its leader with the thread
    /// flags (and set_tid for the original id). The new thread is attached to us on its own
    /// (PTRACE_O_TRACECLONE) and never runs before its registers are replaced.
    /// </summary>
    public static Tracee CreateThread(Tracee leader, int? tid)
    {
        var args = new ulong[11];
        args[0] = ThreadFlags;
        var scratch = leader.Scratch;
        if (tid is { } wanted)
        {
            leader.WriteScratch(BitConverter.GetBytes(wanted), 128);
            args[8] = scratch + 128;
            args[9] = 1;
        }
        leader.WriteScratch(MemoryMarshal.AsBytes(args.AsSpan()));
        var created = leader.Syscall(Syscalls.clone3, (long)scratch, args.Length * 8);
        if (created < 0)
        {
            throw -created == (int)Errno.EEXIST
                ? new RestartException(RestartFailure.PidInUse,
                    $"thread id {tid} is in use by another process. Use -NoRestorePid to restart with new ids.", tid?.ToString())
                : new NativeException("clone3 of a thread", (int)-created);
        }
        var thread = Tracee.Adopt(leader.Pid, (int)created);
        thread.ShareRemoteStateOf(leader);
        return thread;
    }

    /// <summary>posix_spawn with a clean signal state and /dev/null for 0-2; no rseq, so nothing to undo.</summary>
    private static int SpawnStub()
    {
        var attr = NativeMemory.AllocZeroed(SpawnAttrSize);
        var actions = NativeMemory.AllocZeroed(SpawnFileActionsSize);
        var sigset = (byte*)NativeMemory.AllocZeroed(SigSetSize);
        var argv = new[] { "sleep", "1000000" };
        var envp = new[] { "GLIBC_TUNABLES=glibc.pthread.rseq=0", "PATH=/usr/bin:/bin" };
        var strings = new List<nint>();
        try
        {
            posix_spawnattr_init(attr);
            posix_spawnattr_setsigmask(attr, sigset);
            new Span<byte>(sigset, SigSetSize).Fill(0xff);
            posix_spawnattr_setsigdefault(attr, sigset);
            posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
            posix_spawn_file_actions_init(actions);
            for (var fd = 0; fd < 3; fd++)
                posix_spawn_file_actions_addopen(actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0);

            var argvPtrs = stackalloc nint[argv.Length + 1];
            var envPtrs = stackalloc nint[envp.Length + 1];
            for (var i = 0; i < argv.Length; i++) strings.Add(argvPtrs[i] = Marshal.StringToCoTaskMemUTF8(argv[i]));
            for (var i = 0; i < envp.Length; i++) strings.Add(envPtrs[i] = Marshal.StringToCoTaskMemUTF8(envp[i]));
            argvPtrs[argv.Length] = 0;
            envPtrs[envp.Length] = 0;

            int pid;
            var err = posix_spawn(&pid, StubProgram, actions, attr, argvPtrs, envPtrs);
            if (err != 0) throw new NativeException($"posix_spawn {StubProgram}", err);
            return pid;
        }
        finally
        {
            posix_spawn_file_actions_destroy(actions);
            posix_spawnattr_destroy(attr);
            NativeMemory.Free(attr);
            NativeMemory.Free(actions);
            NativeMemory.Free(sigset);
            foreach (var s in strings) Marshal.FreeCoTaskMem(s);
        }
    }

    /// <summary>
    /// Waits (bounded) for a pid whose previous owner was just killed: until its zombie is reaped,
    /// the id is not free. A live process holding it is an error at once.
    /// </summary>
    public static void WaitForFreePid(int pid, TimeSpan limit)
    {
        if (pid == Environment.ProcessId)
            throw new RestartException(RestartFailure.PidInUse,
                $"process id {pid} is this PowerShell process. Use -NoRestorePid to restart with a new process id.", pid.ToString());
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (ProcTasks.Exists(pid))
        {
            char state;
            try { state = ProcStat.Read(pid).State; }
            catch (IOException) { continue; }
            if (state is not ('Z' or 'X') || clock.Elapsed > limit)
            {
                var name = "";
                try { name = $" ({ProcStat.Read(pid).Comm})"; } catch (IOException) { }
                throw new RestartException(RestartFailure.PidInUse,
                    $"process id {pid} is in use by another process{name}{(state is 'Z' or 'X' ? " that has exited but not been reaped" : "")}. Use -NoRestorePid to restart with a new process id.",
                    pid.ToString());
            }
            Thread.Sleep(5);
        }
    }
}
