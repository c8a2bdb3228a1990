using CrCheckpoint.Engine.Proc;
using System.Globalization;
using System.Text.RegularExpressions;
using CrCheckpoint.Engine.Native;
using Microsoft.Win32.SafeHandles;

namespace CrCheckpoint.Engine.State.Files;

public static partial class TimerFdState
{
    private const int TFD_CLOEXEC = 0x80000, TFD_NONBLOCK = 0x800;
    private const long TFD_IOC_SET_TICKS = 0x40085400;

    public static TimerFdRecord Capture(FdInfo info) => new()
    {
        Clock = int.Parse(info["clockid"] ?? "1", CultureInfo.InvariantCulture),
        Ticks = ulong.Parse(info["ticks"] ?? "0", CultureInfo.InvariantCulture),
        SettimeFlags = Convert.ToInt32(info["settime flags"] ?? "0", 8),
        Value = Pair(info["it_value"]),
        Interval = Pair(info["it_interval"]),
    };

    private static long[] Pair(string? text) =>
        text is not null && PairPattern().Match(text) is { Success: true } m
            ? [long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture)]
            : [0, 0];

    [GeneratedRegex(@"^\((\d+),\s*(\d+)\)$")]
    private static partial Regex PairPattern();

    /// <summary>
    /// Armed again relative to now with the time that was left (fdinfo shows what was left, whatever
    /// the flags), so it fires as long after the restart as it would have after the checkpoint; the
    /// unread expirations are put back with TFD_IOC_SET_TICKS.
    /// </summary>
    public static unsafe SafeFileHandle Create(TimerFdRecord t, int openFlags)
    {
        var fd = (int)ErrnoCheck.Check(Interop.syscall(Syscalls.timerfd_create, t.Clock, TFD_CLOEXEC | (openFlags & TFD_NONBLOCK)), "timerfd_create");
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            // struct itimerspec: it_interval, then it_value.
            // No time left: disarmed, or a periodic timer that expired and waits for its expirations
            // to be read before the kernel moves it on by whole periods; that one fires a period later.
            var spec = stackalloc long[4] { t.Interval[0], t.Interval[1], t.Value[0], t.Value[1] };
            if (t.Value is [0, 0] && t.Ticks > 0) (spec[2], spec[3]) = (t.Interval[0], t.Interval[1]);
            ErrnoCheck.Check(Interop.syscall(Syscalls.timerfd_settime, fd, 0, (long)spec, 0), "timerfd_settime");
            if (t.Ticks > 0)
            {
                var ticks = t.Ticks;
                ErrnoCheck.Check(Interop.syscall(Syscalls.ioctl, fd, TFD_IOC_SET_TICKS, (long)&ticks), "ioctl(TFD_IOC_SET_TICKS)");
            }
            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }
}
