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
