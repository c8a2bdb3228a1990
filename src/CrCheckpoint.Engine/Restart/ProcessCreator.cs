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
public static class ProcessCreator
{
    private const string StubProgram = "/bin/sleep";

    public static Tracee Create(int? pid, MessageLog log)
    {
        var stub = SpawnStub();
        Tracee? stubTracee = null;
        try
        {
            // TRACECLONE: the new process, made with CLONE_PARENT and no exit signal, is a clone to the kernel.
            stubTracee = Tracee.Seize(stub, stub, PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_EXITKILL);
            stubTracee.Prepare();
            var tracee = Fork(stubTracee, pid, sibling: true);
            log.Add($"created process {tracee.Pid}{(pid is null ? "" : " with its original id")}");
            return tracee;
        }
        finally
        {
            if (stubTracee is not null) stubTracee.KillAndReap();
            else Tracee.KillAndReapChild(stub);
        }
    }

    /// <summary>
    /// Forks a child inside a process being rebuilt (with its original pid unless told otherwise).
    /// It starts as a copy of the parent, scratch page included, and is rebuilt like any other process.
    /// </summary>
    public static Tracee CreateChild(Tracee parent, int? pid) => Fork(parent, pid, sibling: false);

    private static Tracee Fork(Tracee parent, int? pid, bool sibling)
    {
        try
        {
            return parent.ForkProcess(pid, sibling);
        }
        catch (NativeException e) when (e.Errno == Errno.EEXIST)
        {
            throw new RestartException(RestartFailure.PidInUse,
                $"process id {pid} is in use by another process. Use -NoRestorePid to restart with new ids.", pid?.ToString());
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
