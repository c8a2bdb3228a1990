using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Tracing;

namespace CrCheckpoint.Engine.State.Timers;

/// <summary>The interval timers of setitimer: ITIMER_REAL, ITIMER_VIRTUAL and ITIMER_PROF.</summary>
public static class IntervalTimers
{
    public static readonly string[] Names = ["Real", "Virtual", "Prof"];

    /// <summary>Remote getitimer for each kind; unarmed timers are left out.</summary>
    public static List<IntervalTimerRecord> Capture(Tracee tracee)
    {
        var timers = new List<IntervalTimerRecord>();
        using var scratch = tracee.Scratch();
        var current = scratch.Buffer(32);
        Span<byte> value = stackalloc byte[32];
        for (var which = 0; which < 3; which++)
        {
            tracee.CheckedSyscall("getitimer", Syscalls.getitimer, which, current);
            current.Read(value);
            var interval = BitConverter.ToInt64(value[..8]) * 1_000_000 + BitConverter.ToInt64(value[8..16]);
            var remaining = BitConverter.ToInt64(value[16..24]) * 1_000_000 + BitConverter.ToInt64(value[24..32]);
            if (interval == 0 && remaining == 0) continue;
            timers.Add(new IntervalTimerRecord { Which = which, Name = Names[which], IntervalMicroseconds = interval, ValueMicroseconds = remaining });
        }
        return timers;
    }

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
