using CrCheckpoint.Engine.Image;
using CrCheckpoint.Engine.Restart;
using CrCheckpoint.Engine.Tracing;
using CrCheckpoint.Engine.State.Process;
using Sig = CrCheckpoint.Engine.Native.Signals;

namespace CrCheckpoint.Engine.State.Signals;

/// <summary>
/// A job-control stop: which signal stopped the process (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU), as the
/// kernel reported it when the process was seized, and the same stop entered again at restart. The
/// signal matters to the program: its parent's waitpid(WUNTRACED) reports it (WSTOPSIG), and a
/// shell's job control acts on it.
/// </summary>
public static class StopState
{
    /// <summary>The stop signal to record, or null for a process that was not stopped.</summary>
    public static int? Capture(FrozenProcess frozen, char stateBefore) =>
        frozen.GroupStopSignal is var s and not 0 ? s
        // /proc said stopped but the stop was over by the time it was seized: the older, plain answer.
        : stateBefore == 'T' ? Sig.SIGSTOP : null;

    /// <summary>The signal that puts the restarted process back in its stop; 0 for none. Files before 1.2 only said "stopped".</summary>
    public static int SignalFor(ProcessRecord process) =>
        process.StopSignal ?? (process.WasStopped ? Sig.SIGSTOP : 0);

    /// <summary>
    /// A root that led its own session (no controlling terminal) gets it back when a process of that
    /// session was stopped: in the caller's session, its process group would become orphaned when
    /// the caller exits, and the kernel then sends SIGHUP and SIGCONT to a group with a stopped member,
    /// killing or waking what was stopped. In its own session, as at the checkpoint, the group was
    /// orphaned from the start and nothing is sent.
    /// </summary>
    public static RestartRequest SessionFor(RestartRequest request, IReadOnlyList<ProcessImage> order, MessageLog log)
    {
        if (request.RestoreSid || order.Count == 0) return request;
        var root = order[0].Process;
        if (root.SessionId != root.Pid || root.TtyNumber != 0) return request;
        var stopped = order.FirstOrDefault(p => !p.Process.Zombie && p.Process.SessionId == root.Pid && SignalFor(p.Process) != 0);
        if (stopped is null) return request;
        log.Add($"process {stopped.Pid} was stopped in the session that {root.Pid} led: the session is restored (as -RestoreSid), so that the stop is not undone by SIGHUP and SIGCONT once the caller exits");
        return request.WithOwnSession();
    }

    private static bool IsStop(int signal) => signal is Sig.SIGSTOP or Sig.SIGTSTP or Sig.SIGTTIN or Sig.SIGTTOU;

    /// <summary>
    /// Lets the leader go, stopped by <paramref name="signal"/> if it is a stop signal; the stop the
    /// kernel then reports is checked against it before the process is ours no more.
    /// </summary>
    public static void Release(Tracee leader, int signal)
    {
        if (!IsStop(signal))
        {
            leader.Release(signal);
            return;
        }
        var reported = leader.ReleaseStopped(signal);
        if (reported != signal)
            throw RestartCheck.Mismatch(leader.Pid, "the signal of its job-control stop", Sig.Name(signal),
                reported == Sig.SIGTRAP ? "none (the kernel discarded the stop signal: is its process group orphaned?)" : Sig.Name(reported));
    }
}
