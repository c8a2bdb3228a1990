using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Proc;
using CrCheckpoint.Engine.Tracing;

namespace CrCheckpoint.Engine.State.Signals;

/// <summary>Reads dispositions by remote rt_sigaction (only for signals /proc says are caught or ignored).</summary>
public static class SignalCapture
{
    public static SignalStateRecord Capture(Tracee tracee, ProcStatus status)
    {
        var caught = status.Mask("SigCgt");
        var ignored = status.Mask("SigIgn");
        var dispositions = new List<SignalDispositionRecord>();
        using var scratch = tracee.Scratch();
        var old = scratch.Buffer(32);
        Span<byte> act = stackalloc byte[32];
        for (var sig = 1; sig <= 64; sig++)
        {
            if (sig is Native.Signals.SIGKILL or Native.Signals.SIGSTOP) continue;
            var bit = 1UL << (sig - 1);
            if ((caught & bit) == 0 && (ignored & bit) == 0) continue;
            if ((caught & bit) == 0 && sig != Native.Signals.SIGCHLD)
            {
                // Ignored: nothing but SIG_IGN to remember (SIGCHLD's flags matter: SA_NOCLDWAIT).
                dispositions.Add(new SignalDispositionRecord { Signal = sig, Name = Native.Signals.Name(sig), Handler = 1 });
                continue;
            }
            tracee.CheckedSyscall("rt_sigaction", Syscalls.rt_sigaction, sig, 0, old, 8);
            old.Read(act);
            dispositions.Add(new SignalDispositionRecord
            {
                Signal = sig,
                Name = Native.Signals.Name(sig),
                Handler = BitConverter.ToUInt64(act[..8]),
                Flags = BitConverter.ToUInt64(act[8..16]),
                Restorer = BitConverter.ToUInt64(act[16..24]),
                Mask = BitConverter.ToUInt64(act[24..32]),
            });
        }
        return new SignalStateRecord { Dispositions = dispositions, SharedPending = tracee.PeekPendingSignals(shared: true) };
    }
}
