namespace CrCheckpoint.Engine.Proc;

/// <summary>One line of /proc/PID/cgroup: hierarchy id, its controllers ("cpu,cpuacct", "name=systemd", "" for v2), the cgroup's path.</summary>
public readonly record struct CgroupLine(int Hierarchy, string Controllers, string Path);

/// <summary>A cgroup file system mounted in the engine's view: which hierarchy, which of its directories, where.</summary>
public readonly record struct CgroupMount(bool Unified, string[] Options, string Root, string MountPoint);

public static class ProcCgroup
{
    public static List<CgroupLine> Parse(string text)
    {
        var lines = new List<CgroupLine>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var first = line.IndexOf(':');
            var second = first < 0 ? -1 : line.IndexOf(':', first + 1);
            if (second < 0 || !int.TryParse(line.AsSpan(0, first), out var id)) continue;
            lines.Add(new CgroupLine(id, line[(first + 1)..second], line[(second + 1)..]));
        }
        return lines;
    }

    public static List<CgroupLine> Read(string path) => Parse(ProcText.Read(path));

    /// <summary>The cgroup and cgroup2 mounts of /proc/self/mountinfo (fields: id parent dev root mountpoint options [optional...] - type source superoptions).</summary>
    public static List<CgroupMount> Mounts()
    {
        var mounts = new List<CgroupMount>();
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            var f = line.Split(' ');
            var dash = Array.IndexOf(f, "-");
            if (dash < 6 || dash + 3 >= f.Length) continue;
            var type = f[dash + 1];
            if (type is not ("cgroup" or "cgroup2")) continue;
            mounts.Add(new CgroupMount(type == "cgroup2", f[dash + 3].Split(','), Unescape(f[3]), Unescape(f[4])));
        }
        return mounts;
    }

    /// <summary>
    /// The directory of cgroup <paramref name="line"/> under a mount of its hierarchy that holds it,
    /// or null when none is mounted here.
    /// </summary>
    public static string? DirectoryOf(CgroupLine line, List<CgroupMount> mounts)
    {
        var unified = line.Hierarchy == 0 && line.Controllers == "";
        var wanted = line.Controllers.Split(',', StringSplitOptions.RemoveEmptyEntries);
        foreach (var m in mounts)
        {
            if (m.Unified != unified || (!unified && !wanted.All(m.Options.Contains))) continue;
            var root = m.Root.TrimEnd('/');
            if (line.Path != m.Root && !line.Path.StartsWith(root + "/", StringComparison.Ordinal)) continue;
            return m.MountPoint.TrimEnd('/') + line.Path[root.Length..];
        }
        return null;
    }

    /// <summary>mountinfo writes space, tab, newline and backslash as \ooo.</summary>
    private static string Unescape(string s)
    {
        if (!s.Contains('\\')) return s;
        var b = new System.Text.StringBuilder();
        for (var i = 0; i < s.Length; i++)
            if (s[i] == '\\' && s.Length - i >= 4)
            {
                b.Append((char)Convert.ToInt32(s.Substring(i + 1, 3), 8));
                i += 3;
            }
            else b.Append(s[i]);
        return b.ToString();
    }
}
