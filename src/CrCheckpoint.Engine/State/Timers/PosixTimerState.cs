using System.Globalization;
using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Tracing;

namespace CrCheckpoint.Engine.State.Timers;

/// <summary>
/// POSIX timers: /proc/PID/timers tells each one's id, clock and notification, a timer_gettime the
/// process makes tells its time left. At restart the process makes each timer again under its own
/// id (PR_TIMER_CREATE_RESTORE_IDS) and arms it with the time that was left.
/// </summary>
public static class PosixTimerState
{
    private const int SIGEV_THREAD_ID = 4, PR_TIMER_CREATE_RESTORE_IDS = 77;

    public static List<PosixTimerRecord> Capture(Tracee tracee, string listing)
    {
        var timers = new List<PosixTimerRecord>();
        // Four lines a timer, the first "ID: n" (a line of its own: "ClockID:" holds "ID:" too).
        var all = listing.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        for (var at = 0; at < all.Length; at++)
        {
            if (!all[at].StartsWith("ID:", StringComparison.Ordinal)) continue;
            var lines = all.Skip(at).TakeWhile((l, i) => i == 0 || !l.StartsWith("ID:", StringComparison.Ordinal)).ToArray();
            string Field(string key) => lines.First(l => l.StartsWith(key + ":", StringComparison.Ordinal))[(key.Length + 1)..].Trim();
            var id = int.Parse(Field("ID"), CultureInfo.InvariantCulture);
            var signal = Field("signal").Split('/');
            // notify: "signal/pid.1234", "signal/tid.1235", "none/pid.1234"
            var notify = Field("notify");
            var how = notify[..notify.IndexOf('/')];
            var target = notify[(notify.IndexOf('/') + 1)..];
            var kind = how switch { "none" => 1, "thread" => 2, _ => 0 } | (target.StartsWith("tid", StringComparison.Ordinal) ? SIGEV_THREAD_ID : 0);
            var spec = new byte[32];
            using (var scratch = tracee.Scratch())
            {
                var current = scratch.Buffer(spec.Length);
                tracee.CheckedSyscall($"timer_gettime({id})", Syscalls.timer_gettime, id, current);
                current.Read(spec);
            }
            timers.Add(new PosixTimerRecord
            {
                Id = id,
                Clock = int.Parse(Field("ClockID"), CultureInfo.InvariantCulture),
                Signal = int.Parse(signal[0], CultureInfo.InvariantCulture),
                Value = ulong.Parse(signal[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                Notify = kind,
                ThreadId = int.Parse(target[(target.IndexOf('.') + 1)..], CultureInfo.InvariantCulture),
                Interval = [BitConverter.ToInt64(spec, 0), BitConverter.ToInt64(spec, 8)],
                Remaining = [BitConverter.ToInt64(spec, 16), BitConverter.ToInt64(spec, 24)],
            });
        }
        return timers;
    }

    /// <summary>Every timer again under its id; a thread-directed one goes to the thread's new id.</summary>
    public static void Restore(Tracee leader, List<PosixTimerRecord> timers, Func<int, int> newThreadId)
    {
        if (timers.Count == 0) return;
        leader.CheckedSyscall("prctl(PR_TIMER_CREATE_RESTORE_IDS)", Syscalls.prctl, PR_TIMER_CREATE_RESTORE_IDS, 1);
        try
        {
            foreach (var t in timers)
            {
                // struct sigevent: sigev_value, sigev_signo, sigev_notify, then the target thread; timer_t after it.
                var block = new byte[64 + 8 + 32];
                BitConverter.TryWriteBytes(block, t.Value);
                BitConverter.TryWriteBytes(block.AsSpan(8), t.Signal);
                BitConverter.TryWriteBytes(block.AsSpan(12), t.Notify);
                if ((t.Notify & SIGEV_THREAD_ID) != 0) BitConverter.TryWriteBytes(block.AsSpan(16), newThreadId(t.ThreadId));
                BitConverter.TryWriteBytes(block.AsSpan(64), t.Id);
                BitConverter.TryWriteBytes(block.AsSpan(72), t.Interval[0]);
                BitConverter.TryWriteBytes(block.AsSpan(80), t.Interval[1]);
                BitConverter.TryWriteBytes(block.AsSpan(88), t.Remaining[0]);
                BitConverter.TryWriteBytes(block.AsSpan(96), t.Remaining[1]);
                using var scratch = leader.Scratch();
                var copy = scratch.Bytes(block);
                leader.CheckedSyscall($"timer_create (timer {t.Id})", Syscalls.timer_create, t.Clock, copy, copy.Slice(64, 8));
                leader.CheckedSyscall($"timer_settime (timer {t.Id})", Syscalls.timer_settime, t.Id, 0, copy.Slice(72, 32), 0);
            }
        }
        finally
        {
            leader.Syscall(Syscalls.prctl, PR_TIMER_CREATE_RESTORE_IDS, 0);
        }
    }
}
