using System.Globalization;
using System.Text;

namespace CrCheckpoint.Engine.Proc;

/// <summary>One line of /proc/PID/mountinfo: mount id, parent id, "major:minor", the root of the mount within its file system, and where it is mounted.</summary>
public sealed record MountLine(int Id, int ParentId, string Device, string Root, string MountPoint)
{
    /// <summary>Every mount of a mountinfo text; the kernel writes spaces, tabs, newlines and backslashes in paths as \ooo.</summary>
    public static List<MountLine> Parse(string text)
    {
        var mounts = new List<MountLine>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var f = line.Split(' ');
            if (f.Length < 5) continue;
            mounts.Add(new MountLine(int.Parse(f[0], CultureInfo.InvariantCulture), int.Parse(f[1], CultureInfo.InvariantCulture),
                f[2], Unescape(f[3]), Unescape(f[4])));
        }
        return mounts;
    }

    public static List<MountLine> Read(int pid) => Parse(ProcText.Read($"/proc/{pid}/mountinfo"));

    private static string Unescape(string field)
    {
        if (!field.Contains('\\')) return field;
        var bytes = new List<byte>();
        for (var i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && IsOctal(field, i + 1))
            {
                bytes.Add((byte)Convert.ToInt32(field.Substring(i + 1, 3), 8));
                i += 3;
            }
            else bytes.AddRange(Encoding.UTF8.GetBytes(field[i].ToString()));
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    private static bool IsOctal(string s, int at) =>
        at + 3 <= s.Length && s.Substring(at, 3).All(c => c is >= '0' and <= '7');
}
