using CrCheckpoint.Engine.Native;

namespace CrCheckpoint.Engine.Checkpoint;

public static class AfterActionSignal
{
    /// <summary>The signal an after-action sends; 0 for Run.</summary>
    public static int For(AfterAction action, int signal) => action switch
    {
        AfterAction.Stop => Signals.SIGSTOP,
        AfterAction.Term => Signals.SIGTERM,
        AfterAction.Abort => Signals.SIGABRT,
        AfterAction.Kill => Signals.SIGKILL,
        AfterAction.Cont => Signals.SIGCONT,
        AfterAction.Signal => signal,
        _ => 0,
    };
}
