namespace CrCheckpoint.Engine.Proc;

/// <summary>The "key: value" lines of /proc/PID/fdinfo/FD, where the kernel shows the state of eventfds, timerfds, signalfds and epolls.</summary>
public sealed class FdInfo
{
    private readonly string[] _lines;

    private FdInfo(string[] lines) => _lines = lines;

    public static FdInfo Read(int pid, int fd) => Parse(File.ReadAllText($"/proc/{pid}/fdinfo/{fd}"));

    public static FdInfo Parse(string text) => new(text.Split('\n', StringSplitOptions.RemoveEmptyEntries));

    /// <summary>The value of the first line starting with <paramref name="key"/> and a colon, trimmed; null when there is none.</summary>
    public string? this[string key] =>
        _lines.FirstOrDefault(l => l.StartsWith(key + ":", StringComparison.Ordinal)) is { } line ? line[(key.Length + 1)..].Trim() : null;

    /// <summary>Every line starting with <paramref name="key"/> and a colon (epoll has one "tfd:" line per watched descriptor).</summary>
    public IEnumerable<string> All(string key) =>
        _lines.Where(l => l.StartsWith(key + ":", StringComparison.Ordinal)).Select(l => l[(key.Length + 1)..].Trim());
}
