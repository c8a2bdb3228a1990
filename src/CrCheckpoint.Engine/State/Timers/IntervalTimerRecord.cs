using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Tracing;

namespace CrCheckpoint.Engine.State.Timers;

/// <summary>One armed interval timer (setitimer): ITIMER_REAL, ITIMER_VIRTUAL or ITIMER_PROF.</summary>
public sealed class IntervalTimerRecord
{
    public static readonly string[] Names = ["Real", "Virtual", "Prof"];

    public int Which { get; init; }
    public string Name { get; init; } = "";
    public long IntervalMicroseconds { get; init; }
    public long ValueMicroseconds { get; init; }

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
}
