using System.Globalization;

namespace CrCheckpoint.Engine.Proc;

/// <summary>
/// The "key: value" lines of /proc/PID/fdinfo/FD: offset, flags and mount of every descriptor, its
/// locks, and the state of eventfds, timerfds, signalfds, epolls and inotifies.
/// </summary>
public sealed class FdInfo
{
    private readonly string[] _lines;

    private FdInfo(string[] lines) => _lines = lines;

    public static FdInfo Read(int pid, int fd) => Parse(File.ReadAllText($"/proc/{pid}/fdinfo/{fd}"));

    /// <summary>Null when the descriptor is not open.</summary>
    public static FdInfo? TryRead(int pid, int fd)
    {
        try { return Read(pid, fd); }
        catch (FileNotFoundException) { return null; }
    }

    public static FdInfo Parse(string text) => new(text.Split('\n', StringSplitOptions.RemoveEmptyEntries));

    /// <summary>The value of the first line starting with <paramref name="key"/> and a colon, trimmed; null when there is none.</summary>
    public string? this[string key] =>
        _lines.FirstOrDefault(l => l.StartsWith(key + ":", StringComparison.Ordinal)) is { } line ? line[(key.Length + 1)..].Trim() : null;

    public long Position => long.Parse(this["pos"] ?? "0", CultureInfo.InvariantCulture);

    /// <summary>open(2) flags, O_CLOEXEC included.</summary>
    public int Flags => Convert.ToInt32(this["flags"] ?? "0", 8);

    public int MountId => int.Parse(this["mnt_id"] ?? "0", CultureInfo.InvariantCulture);

    /// <summary>The locks and leases held through the descriptor's open file description.</summary>
    public List<FileLockLine> Locks => All("lock").Select(FileLockLine.Parse).OfType<FileLockLine>().ToList();

    /// <summary>Every line starting with <paramref name="key"/> and a colon (epoll has one "tfd:" line per watched descriptor).</summary>
    public IEnumerable<string> All(string key) =>
        _lines.Where(l => l.StartsWith(key + ":", StringComparison.Ordinal)).Select(l => l[(key.Length + 1)..].Trim());
}
