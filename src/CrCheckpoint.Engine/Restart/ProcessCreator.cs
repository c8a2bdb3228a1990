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

            // exit_signal must be 0 with CLONE_PARENT.
            var child = RemoteClone(stubTracee, CLONE_PARENT, 0, pid, "process");
            var tracee = Tracee.Adopt(child, child);
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
        var created = RemoteClone(parent, 0, SIGCHLD, pid, "process");
        var child = Tracee.Adopt(created, created);
        child.UseSyscallInstructionAt(parent.SyscallInstructionAddress);
        child.OwnScratchCopyAt(parent.Scratch);
        return child;
    }

    /// <summary>
    /// A remote clone3 in <paramref name="parent"/>, with set_tid when an id is asked for. struct
    /// clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
    /// set_tid, set_tid_size, cgroup; the stack stays 0, for the new task never runs before its
    /// registers are replaced.
    /// </summary>
    private static int RemoteClone(Tracee parent, ulong flags, ulong exitSignal, int? id, string what)
    {
        var args = new ulong[11];
        args[0] = flags;
        args[4] = exitSignal;
        var scratch = parent.Scratch;
        if (id is { } wanted)
        {
            parent.WriteScratch(BitConverter.GetBytes(wanted), 128);
            args[8] = scratch + 128;
            args[9] = 1;
        }
        parent.WriteScratch(MemoryMarshal.AsBytes(args.AsSpan()));
        var created = parent.Syscall(Syscalls.clone3, (long)scratch, args.Length * 8);
        if (created >= 0) return (int)created;
        throw -created == (int)Errno.EEXIST
            ? new RestartException(RestartFailure.PidInUse,
                $"{what} id {id} is in use by another process. Use -NoRestorePid to restart with new ids.", id?.ToString())
            : new NativeException($"clone3 of a {what}", (int)-created);
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

    /// <summary>
    /// Creates many threads in rounds: every thread that already exists clones one more in the
    /// same round (the calls run side by side), so 64 threads take 7 rounds instead of 64 calls.
    /// Each creator writes its clone_args into its own slot of the shared scratch page.
    /// CLONE_CHILD_CLEARTID gives each thread its clear_child_tid address at birth.
    /// </summary>
    public static List<Tracee> CreateThreads(Tracee leader, IReadOnlyList<(int? Tid, ulong ClearChildTid)> threads)
    {
        const ulong CLONE_CHILD_CLEARTID = 0x00200000;
        const int Slot = 128;
        var created = new List<Tracee>();
        var creators = new List<Tracee> { leader };
        var next = 0;
        try
        {
            while (next < threads.Count)
            {
                var round = creators.Take(Math.Min(threads.Count - next, Tracee.ScratchSize / Slot)).ToList();
                var calls = new List<(Tracee, long, long, long, long, long)>();
                var block = new byte[round.Count * Slot];
                for (var i = 0; i < round.Count; i++)
                {
                    var args = new ulong[11];
                    var (tid, clearChildTid) = threads[next + i];
                    args[0] = ThreadFlags | (clearChildTid != 0 ? CLONE_CHILD_CLEARTID : 0);
                    args[2] = clearChildTid;
                    var at = leader.Scratch + (ulong)(i * Slot);
                    if (tid is { } wanted)
                    {
                        BitConverter.TryWriteBytes(block.AsSpan(i * Slot + 96, 4), wanted);
                        args[8] = at + 96;
                        args[9] = 1;
                    }
                    MemoryMarshal.AsBytes(args.AsSpan()).CopyTo(block.AsSpan(i * Slot));
                    calls.Add((round[i], Syscalls.clone3, (long)at, 88L, 0L, 0L));
                }
                leader.WriteScratch(block);
                var results = Tracee.SyscallInEach(calls);
                for (var i = 0; i < results.Length; i++)
                {
                    if (results[i] < 0)
                    {
                        var id = threads[next + i].Tid;
                        throw -results[i] == (int)Errno.EEXIST
                            ? new RestartException(RestartFailure.PidInUse,
                                $"thread id {id} is in use by another process. Use -NoRestorePid to restart with new ids.", id?.ToString())
                            : new NativeException("clone3 of a thread", (int)-results[i]);
                    }
                    var thread = Tracee.Adopt(leader.Pid, (int)results[i]);
                    thread.ShareRemoteStateOf(leader);
                    created.Add(thread);
                }
                creators.AddRange(created.Skip(creators.Count - 1));
                next += round.Count;
            }
            return created;
        }
        catch
        {
            foreach (var t in created) t.KillAndReap();
            throw;
        }
    }

    /// <summary>The stub: any program that sleeps; /dev/null for 0-2; no rseq, so nothing to undo.</summary>
    private static int SpawnStub() =>
        ProcessSpawner.Spawn(StubProgram, ["sleep", "1000000"], ["GLIBC_TUNABLES=glibc.pthread.rseq=0", "PATH=/usr/bin:/bin"],
            new SpawnStreams("/dev/null", "/dev/null", "/dev/null"));

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
