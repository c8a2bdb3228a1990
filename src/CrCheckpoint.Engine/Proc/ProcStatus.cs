using System.Globalization;

namespace CrCheckpoint.Engine.Proc;

/// <summary>/proc/PID/status as "Key: value" pairs, with typed views of the fields the engine uses.</summary>
public sealed class ProcStatus
{
    private readonly Dictionary<string, string> _values;

    private ProcStatus(Dictionary<string, string> values) => _values = values;

    public static ProcStatus Read(int pid) => Parse(File.ReadAllText($"/proc/{pid}/status"));

    /// <summary>One thread's status (Seccomp:, SigPnd: and SigBlk: are per thread).</summary>
    public static ProcStatus Read(int pid, int tid) => Parse(File.ReadAllText($"/proc/{pid}/task/{tid}/status"));

    public static ProcStatus Parse(string text)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var colon = line.IndexOf(':');
            if (colon > 0) values[line[..colon]] = line[(colon + 1)..].Trim();
        }
        return new ProcStatus(values);
    }

    public string? this[string key] => _values.GetValueOrDefault(key);

    public int TracerPid => int.Parse(this["TracerPid"] ?? "0", CultureInfo.InvariantCulture);
    public int Umask => Convert.ToInt32(this["Umask"] ?? "0022", 8);
    public int Threads => int.Parse(this["Threads"] ?? "1", CultureInfo.InvariantCulture);

    public ulong Mask(string key) => ulong.Parse(this[key] ?? "0", NumberStyles.HexNumber);

    /// <summary>Real, effective, saved and filesystem ids from the Uid: or Gid: line.</summary>
    public uint[] Ids(string key) =>
        (this[key] ?? "").Split(['\t', ' '], StringSplitOptions.RemoveEmptyEntries).Select(uint.Parse).ToArray();

    public uint[] Groups => Ids("Groups");
}
