using System.Globalization;

namespace CrCheckpoint.Engine.Proc;

/// <summary>
/// The "VmFlags:" line of each area in /proc/PID/smaps: two-letter names of the vma flags, the only
/// place the kernel shows what madvise, mlock and mseal did to an area (maps does not).
/// </summary>
public sealed record AreaFlags(ulong Start, ulong End, HashSet<string> Flags);

public static class ProcSmaps
{
    /// <summary>Every area with its flags ("rd", "mw", "dc", "lo"...), in address order.</summary>
    public static List<AreaFlags> ReadFlags(int pid) => ParseFlags(File.ReadAllText($"/proc/{pid}/smaps"));

    /// <summary>The flags of the area holding <paramref name="address"/>, or null when none does.</summary>
    public static HashSet<string>? At(List<AreaFlags> areas, ulong address) =>
        areas.FirstOrDefault(a => a.Start <= address && address < a.End)?.Flags;

    public static List<AreaFlags> ParseFlags(string text)
    {
        var flags = new List<AreaFlags>();
        (ulong Start, ulong End)? current = null;
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.StartsWith("VmFlags:", StringComparison.Ordinal))
            {
                if (current is { } area)
                    flags.Add(new AreaFlags(area.Start, area.End, line["VmFlags:".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet()));
                continue;
            }
            // An area's header is the maps line: "start-end perms ..."; its fields are "Name:   value".
            var dash = line.IndexOf('-');
            var space = line.IndexOf(' ');
            if (dash > 0 && space > dash && !line[..space].Contains(':') &&
                ulong.TryParse(line.AsSpan(0, dash), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var s) &&
                ulong.TryParse(line.AsSpan(dash + 1, space - dash - 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var e))
                current = (s, e);
        }
        return flags;
    }
}
