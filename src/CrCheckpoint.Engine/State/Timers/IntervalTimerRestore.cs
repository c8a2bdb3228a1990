using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Tracing;

namespace CrCheckpoint.Engine.State.Timers;

public static class IntervalTimerRestore
{
    /// <summary>Re-arms each timer with the time it had left at the checkpoint.</summary>
    public static void Restore(Tracee tracee, IEnumerable<IntervalTimerRecord> timers)
    {
        using var scratch = tracee.Scratch();
        var copy = scratch.Buffer(32);
        Span<byte> value = stackalloc byte[32];
        foreach (var t in timers)
        {
            BitConverter.TryWriteBytes(value[..8], t.IntervalMicroseconds / 1_000_000);
            BitConverter.TryWriteBytes(value[8..16], t.IntervalMicroseconds % 1_000_000);
            var remaining = Math.Max(t.ValueMicroseconds, 1);
            BitConverter.TryWriteBytes(value[16..24], remaining / 1_000_000);
            BitConverter.TryWriteBytes(value[24..32], remaining % 1_000_000);
            copy.Write(value);
            tracee.CheckedSyscall($"setitimer({t.Name})", Syscalls.setitimer, t.Which, copy, 0);
        }
    }
}
