using System.Globalization;

namespace CrCheckpoint.Engine.Proc;

/// <summary>Parses /proc/PID/maps.</summary>
public static class ProcMaps
{
    public static List<MemoryArea> Read(int pid) => Parse(File.ReadAllText($"/proc/{pid}/maps"));

    public static List<MemoryArea> Parse(string text)
    {
        var areas = new List<MemoryArea>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            areas.Add(ParseLine(line));
        return areas;
    }

    public static MemoryArea ParseLine(string line)
    {
        // start-end perms offset major:minor inode   path (the path may contain spaces)
        var span = line.AsSpan();
        var range = NextField(ref span);
        var perms = NextField(ref span);
        var offset = NextField(ref span);
        var dev = NextField(ref span);
        var inode = NextField(ref span);
        var path = span.TrimStart(' ').ToString();

        var dash = range.IndexOf('-');
        var colon = dev.IndexOf(':');
        return new MemoryArea(
            ulong.Parse(range[..dash], NumberStyles.HexNumber),
            ulong.Parse(range[(dash + 1)..], NumberStyles.HexNumber),
            perms[0] == 'r', perms[1] == 'w', perms[2] == 'x', perms[3] == 's',
            ulong.Parse(offset, NumberStyles.HexNumber),
            uint.Parse(dev[..colon], NumberStyles.HexNumber),
            uint.Parse(dev[(colon + 1)..], NumberStyles.HexNumber),
            ulong.Parse(inode, CultureInfo.InvariantCulture),
            path);
    }

    private static ReadOnlySpan<char> NextField(ref ReadOnlySpan<char> span)
    {
        span = span.TrimStart(' ');
        var end = span.IndexOf(' ');
        if (end < 0) end = span.Length;
        var field = span[..end];
        span = span[end..];
        return field;
    }
}
