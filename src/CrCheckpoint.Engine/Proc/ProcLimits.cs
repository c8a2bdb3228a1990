using System.Globalization;

namespace CrCheckpoint.Engine.Proc;

/// <summary>
/// /proc/PID/limits: a header, then one row per resource in resource order (RLIMIT_CPU first), the
/// name in the first 26 columns, then the soft and hard limits ("unlimited" or a number) and units.
/// </summary>
public static class ProcLimits
{
    /// <summary>Soft and hard limit of each resource, in resource order; ulong.MaxValue is unlimited.</summary>
    public static List<(ulong Soft, ulong Hard)> Parse(string text)
    {
        static ulong Value(string v) => v == "unlimited" ? ulong.MaxValue : ulong.Parse(v, CultureInfo.InvariantCulture);
        return text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1)
            .Select(row => row.Length > 26 ? row[26..].Split(' ', StringSplitOptions.RemoveEmptyEntries) : [])
            .Select(f => f.Length >= 2 ? (Value(f[0]), Value(f[1])) : throw new InvalidDataException($"a row of /proc/PID/limits has no soft and hard limit"))
            .ToList();
    }

    public static List<(ulong Soft, ulong Hard)> Read(int pid) => Parse(ProcText.Read($"/proc/{pid}/limits"));
}
