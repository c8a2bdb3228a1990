using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Proc;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.Tracing;

/// <summary>
/// Every thread of one process, seized and frozen. Threads are seized with PTRACE_O_TRACECLONE and
/// /proc/PID/task is read again until no new thread shows up, so one born during the freeze is
/// caught too. The leader (tid == pid) comes first; process-wide remote calls run in it, and the
/// other threads share its scratch page.
/// </summary>
public sealed unsafe class FrozenProcess : IDisposable
{
    private FrozenProcess(int pid, List<Tracee> threads)
    {
        Pid = pid;
        Threads = threads;
    }

    public int Pid { get; }
    public IReadOnlyList<Tracee> Threads { get; }
    public Tracee Leader => Threads[0];

    public static FrozenProcess Freeze(int pid, int options = PTRACE_O_TRACECLONE)
    {
        var seized = new Dictionary<int, Tracee>();
        // Threads that could not be seized: exited, exiting, or zombies. Listed again, they are not tried again.
        var gone = new HashSet<int>();
        try
        {
            while (true)
            {
                Tracee.CheckDeadline($"freezing the threads of process {pid} (new ones kept being born)");
                List<int> listed;
                try { listed = ProcTasks.ThreadIds(pid); }
                catch (DirectoryNotFoundException) { throw new TraceeGoneException(pid, "no such process"); }
                var fresh = listed.Where(t => !seized.ContainsKey(t) && !gone.Contains(t)).ToList();
                if (fresh.Count == 0) break;
                // A thread that exits while the others are frozen simply is not part of the checkpoint.
                foreach (var tracee in Tracee.SeizeAll(pid, fresh, options)) seized[tracee.Tid] = tracee;
                gone.UnionWith(fresh.Where(t => !seized.ContainsKey(t)));
            }
            if (!seized.ContainsKey(pid))
            {
                // A main thread that cannot be seized while others could is a zombie left by
                // pthread_exit; with no thread left, the process is ending.
                if (seized.Count == 0 || !IsAlive(pid, seized.Keys.First())) throw new TraceeGoneException(pid, "exiting");
                throw new State.UnsupportedStateException(pid,
                    "its main thread has exited (pthread_exit) while other threads run on; such a process cannot be checkpointed yet");
            }
            var ordered = seized.Values.OrderBy(t => t.Tid == pid ? 0 : 1).ThenBy(t => t.Tid).ToList();
            return new FrozenProcess(pid, ordered);
        }
        catch
        {
            foreach (var t in seized.Values) t.DetachQuietly();
            throw;
        }
    }

    private static bool IsAlive(int pid, int tid)
    {
        try
        {
            return ProcStat.Read(pid, tid).State is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>The signal of the job-control stop the process was in (the kernel's own report), or 0.</summary>
    public int GroupStopSignal => Threads.Select(t => t.GroupStopSignal).FirstOrDefault(s => s != 0);

    /// <summary>
    /// Readies the process for remote calls (<see cref="Tracee.Prepare"/>): the leader finds the
    /// syscall instruction and owns the scratch page; the other threads use both.
    /// </summary>
    public void Prepare(IReadOnlyList<MemoryArea> areas)
    {
        Leader.Prepare(areas);
        foreach (var t in Threads.Skip(1)) t.ShareRemoteStateOf(Leader);
    }

    /// <summary>
    /// Releases every thread. The leader goes first and carries <paramref name="signal"/> (its
    /// detach delivers it), so that a stop is already pending when the other threads resume.
    /// </summary>
    public void Release(int signal = 0)
    {
        Leader.Release(signal);
        foreach (var t in Threads.Skip(1)) t.Release();
    }

    public void DetachQuietly()
    {
        foreach (var t in Threads.Skip(1)) t.DetachQuietly();
        Leader.DetachQuietly();
    }

    /// <summary>
    /// Kills the process and reaps every thread; the leader's exit is only reported once all the
    /// others have been reaped, so they go first.
    /// </summary>
    public void KillAndReap()
    {
        Interop.kill(Pid, Signals.SIGKILL);
        foreach (var t in Threads.Skip(1)) t.KillAndReap();
        Leader.KillAndReap();
    }

    public void Dispose() => DetachQuietly();
}
