using System.Globalization;

namespace CrCheckpoint.Engine.Proc;

/// <summary>
/// One "lock:" line of /proc/PID/fdinfo/FD: a lock or lease held through that open file
/// description. Kind is POSIX, OFDLCK, FLOCK, LEASE or DELEG; Mode is ADVISORY for locks and
/// ACTIVE, BREAKING or BREAKER for leases; Type READ, WRITE or UNLCK; End is -1 for "to EOF".
/// </summary>
public sealed record FileLockLine(string Kind, string Mode, string Type, int Pid, long Start, long End)
{
    /// <summary>The text after "lock:", e.g. "1: POSIX  ADVISORY  WRITE 4242 00:2f:1234 0 EOF"; null when it is not one.</summary>
    public static FileLockLine? Parse(string text)
    {
        var t = text.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (t.Length < 8 || !t[0].EndsWith(':')) return null;
        if (!int.TryParse(t[4], NumberStyles.Integer, CultureInfo.InvariantCulture, out var pid)) return null;
        if (!long.TryParse(t[6], NumberStyles.Integer, CultureInfo.InvariantCulture, out var start)) return null;
        long end = -1;
        if (t[7] != "EOF" && !long.TryParse(t[7], NumberStyles.Integer, CultureInfo.InvariantCulture, out end)) return null;
        return new FileLockLine(t[1], t[2], t[3], pid, start, end);
    }
}
