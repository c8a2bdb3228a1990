using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Tracing;

namespace CrCheckpoint.Engine.State.Signals;

/// <summary>Puts back dispositions and queued signals inside the rebuilt process (all signals stay blocked meanwhile).</summary>
public static class SignalRestore
{
    public static void RestoreDispositions(Tracee tracee, SignalStateRecord signals)
    {
        using var scratch = tracee.Scratch();
        var copy = scratch.Buffer(32);
        Span<byte> act = stackalloc byte[32];
        foreach (var d in signals.Dispositions)
        {
            BitConverter.TryWriteBytes(act[..8], d.Handler);
            BitConverter.TryWriteBytes(act[8..16], d.Flags);
            BitConverter.TryWriteBytes(act[16..24], d.Restorer);
            BitConverter.TryWriteBytes(act[24..32], d.Mask);
            copy.Write(act);
            tracee.CheckedSyscall($"rt_sigaction({d.Name})", Syscalls.rt_sigaction, d.Signal, copy, 0, 8);
        }
    }

    /// <summary>
    /// Queues each pending signal again with its original siginfo. The process sends them to itself,
    /// which the kernel allows with any si_code.
    /// </summary>
    public static void RestorePending(Tracee tracee, IEnumerable<byte[]> shared, IEnumerable<byte[]> own)
    {
        foreach (var info in shared) Queue(tracee, info, threadOnly: false);
        foreach (var info in own) Queue(tracee, info, threadOnly: true);
    }

    private static void Queue(Tracee tracee, byte[] info, bool threadOnly)
    {
        var sig = BitConverter.ToInt32(info, 0);
        using var scratch = tracee.Scratch();
        var copy = scratch.Bytes(info);
        if (threadOnly)
            tracee.CheckedSyscall("rt_tgsigqueueinfo", Syscalls.rt_tgsigqueueinfo, tracee.Pid, tracee.Tid, sig, copy);
        else
            tracee.CheckedSyscall("rt_sigqueueinfo", Syscalls.rt_sigqueueinfo, tracee.Pid, sig, copy);
    }
}
