using CrCheckpoint.Engine.Native;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.Proc;

/// <summary>One entry of /proc/PID/fd with its /proc/PID/fdinfo and the stat of what it points to.</summary>
public sealed record OpenDescriptor(int Fd, string Target, long Position, int Flags, int MountId, Stat? Stat)
{
    /// <summary>The locks and leases held through this descriptor's open file description.</summary>
    public IReadOnlyList<FileLockLine> Locks { get; init; } = [];
}

/// <summary>Reads a process's open file descriptors from /proc.</summary>
public static unsafe class ProcFds
{
    public static List<OpenDescriptor> Read(int pid)
    {
        var result = new List<OpenDescriptor>();
        foreach (var entry in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
        {
            if (!int.TryParse(System.IO.Path.GetFileName(entry), out var fd)) continue;
            var d = ReadOne(pid, fd);
            if (d is not null) result.Add(d);
        }
        result.Sort((a, b) => a.Fd.CompareTo(b.Fd));
        return result;
    }

    /// <summary>Null when the descriptor was closed between listing and reading.</summary>
    public static OpenDescriptor? ReadOne(int pid, int fd)
    {
        var target = ReadLink($"/proc/{pid}/fd/{fd}");
        if (target is null) return null;
        if (FdInfo.TryRead(pid, fd) is not { } info) return null;
        Stat st;
        Stat? stat = fstatat(AT_FDCWD, $"/proc/{pid}/fd/{fd}", &st, 0) == 0 ? st : null;
        return new OpenDescriptor(fd, target, info.Position, info.Flags, info.MountId, stat) { Locks = info.Locks };
    }

    public static string? ReadLink(string path)
    {
        var buffer = stackalloc byte[4096];
        var n = readlink(path, buffer, 4096);
        if (n < 0) return null;
        return System.Text.Encoding.UTF8.GetString(buffer, (int)n);
    }
}
