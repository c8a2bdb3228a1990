using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Proc;
using CrCheckpoint.Engine.Image;
using CrCheckpoint.Engine.State.Credentials;
using CrCheckpoint.Engine.State.Threads;
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
            // Threads are created with CLONE_PTRACE instead (see CreateThreads): with
            // PTRACE_O_TRACECLONE each clone3 would also stop the creator for a round trip.
            tracee.SetOptions(PTRACE_O_TRACEFORK | PTRACE_O_EXITKILL);
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

    private const ulong ThreadFlags = 0x100 | 0x200 | 0x400 | 0x800 | 0x2000 | 0x10000 | 0x40000; // VM FS FILES SIGHAND PTRACE THREAD SYSVSEM

    /// <summary>
    /// Gives a rebuilt process its threads and every thread its per-thread kernel state, in one
    /// trip of the leader and one of each new thread (<see cref="Tracee.RunBatchAt"/>): the leader
    /// makes its own calls, then a clone3 per thread (with set_tid for the original id, and
    /// CLONE_CHILD_CLEARTID for its clear_child_tid); each new thread, traced by us from birth
    /// (CLONE_PTRACE, which unlike PTRACE_O_TRACECLONE does not stop the leader at every clone),
    /// makes its own calls and stops. Every thread keeps root until the process has everything that
    /// needs it (see <see cref="CredentialsState"/>). None runs the program before its registers are replaced.
    /// Returns the threads after the leader, in the order of the records.
    /// </summary>
    public static List<Tracee> CreateThreads(Tracee leader, ProcessImage process, bool restoreIds, MessageLog log)
    {
        const ulong CLONE_CHILD_CLEARTID = 0x00200000;
        const int Slot = 768, ArgsAt = 0, TidAt = 88, DataAt = 96, TableAt = 144;
        const int MostCalls = (Slot - TableAt) / Tracee.BatchEntry - 1;
        var records = process.Threads;
        var leaderName = records[0].Name;
        var created = new List<Tracee>();
        try
        {
            // The end of the batch room holds what every trip needs: the leader's data.
            var leaderData = new byte[ThreadRestore.KernelStateDataSize];
            var leaderDataAt = Tracee.BatchRoom - leaderData.Length;
            var leaderCalls = ThreadRestore.KernelStateCalls(records[0], leader: true, leaderName, leader.Scratch + (ulong)leaderDataAt, leaderData);
            leader.WriteScratch(leaderData, leaderDataAt);
            var next = 1;
            do
            {
                var room = (leaderDataAt & ~7) - (leaderCalls.Count + 1) * Tracee.BatchEntry;
                var count = Math.Min(records.Count - next, room / (Slot + Tracee.BatchEntry));
                var slotsAt = (leaderCalls.Count + count + 1) * Tracee.BatchEntry;
                var image = new byte[slotsAt + count * Slot];
                var childCalls = new List<(string Name, RemoteCall Call)>[count];
                var clones = new List<RemoteCall>();
                for (var i = 0; i < count; i++)
                {
                    var record = records[next + i];
                    var slot = image.AsSpan(slotsAt + i * Slot, Slot);
                    var at = leader.Scratch + (ulong)(slotsAt + i * Slot);
                    // struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack,
                    // stack_size, tls, set_tid, set_tid_size, cgroup. The stack stays 0: the batch
                    // loop touches no stack, and the thread's own comes with its registers.
                    var args = new ulong[11];
                    args[0] = ThreadFlags | (record.ClearChildTid != 0 ? CLONE_CHILD_CLEARTID : 0);
                    args[2] = record.ClearChildTid;
                    if (restoreIds)
                    {
                        BitConverter.TryWriteBytes(slot.Slice(TidAt, 4), record.Tid);
                        args[8] = at + TidAt;
                        args[9] = 1;
                    }
                    MemoryMarshal.AsBytes(args.AsSpan()).CopyTo(slot[ArgsAt..]);
                    childCalls[i] = ThreadRestore.KernelStateCalls(record, leader: false, leaderName, at + DataAt,
                        slot.Slice(DataAt, ThreadRestore.KernelStateDataSize));
                    if (childCalls[i].Count > MostCalls) throw new InvalidOperationException("too many per-thread calls for a thread's slot");
                    Tracee.EncodeBatch(childCalls[i].Select(c => c.Call).ToList()).CopyTo(slot[TableAt..]);
                    clones.Add(new RemoteCall(Syscalls.clone3, (long)at + ArgsAt, 88, (long)at + TableAt));
                }
                Tracee.EncodeBatch(leaderCalls.Select(c => c.Call).Concat(clones).ToList()).CopyTo(image, 0);
                leader.WriteScratch(image);
                leader.RunBatchAt(leader.Scratch);
                leader.ReadScratch(image.AsSpan(0, slotsAt));

                var failure = CheckResults(image, 0, leaderCalls, "the main thread");
                var started = new List<Tracee>();
                for (var i = 0; i < count; i++)
                {
                    var tid = Tracee.BatchResult(image, leaderCalls.Count + i);
                    if (tid > 0)
                    {
                        var thread = Tracee.StartBatchThread(leader, (int)tid);
                        created.Add(thread);
                        started.Add(thread);
                    }
                    else failure ??= -tid == (int)Errno.EEXIST
                        ? new RestartException(RestartFailure.PidInUse,
                            $"thread id {records[next + i].Tid} is in use by another process. Use -NoRestorePid to restart with new ids.",
                            records[next + i].Tid.ToString())
                        : new NativeException("clone3 of a thread", (int)-tid);
                }
                foreach (var thread in started) thread.WaitForBatchEnd();
                if (failure is not null) throw failure;

                leader.ReadScratch(image.AsSpan(slotsAt), slotsAt);
                for (var i = 0; i < count; i++)
                    if (CheckResults(image, slotsAt + i * Slot + TableAt, childCalls[i], $"thread {created[next - 1 + i].Tid}") is { } e)
                        throw e;
                leaderCalls = [];
                next += count;
            } while (next < records.Count);

            return created;
        }
        catch
        {
            foreach (var t in created) t.KillAndReap();
            throw;
        }
    }

    private static Exception? CheckResults(byte[] image, int tableAt, List<(string Name, RemoteCall Call)> calls, string who)
    {
        for (var i = 0; i < calls.Count; i++)
        {
            var r = Tracee.BatchResult(image.AsSpan(tableAt), i);
            if (r < 0 && r > -4096) return new NativeException($"{calls[i].Name} in {who} of a restarted process", (int)-r);
        }
        return null;
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
