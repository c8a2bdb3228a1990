using CrCheckpoint.Engine.Native;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>
/// Finds the descriptors that share one open file description (inherited across fork, or dup'ed):
/// same kind of file and inode, and kcmp(KCMP_FILE) says they are the same kernel object. Each
/// gets the "PID:FD" of the first holder as its description key.
/// </summary>
public static class SharedDescriptions
{
    public static void Assign(IReadOnlyList<FileTableRecord> tables)
    {
        var representatives = new Dictionary<(FileDescriptorKind, ulong, ulong), List<(int Pid, int Fd, string Key)>>();
        foreach (var table in tables)
        {
            foreach (var d in table.Descriptors)
            {
                var group = (d.Kind, d.Identity?.Device ?? 0, d.Inode != 0 ? d.Inode : d.Identity?.Inode ?? 0);
                if (!representatives.TryGetValue(group, out var known)) representatives[group] = known = [];
                var match = known.FirstOrDefault(k => Same(k.Pid, k.Fd, table.Pid, d.Fd));
                if (match.Key is not null)
                {
                    d.Description = match.Key;
                    continue;
                }
                d.Description = $"{table.Pid}:{d.Fd}";
                known.Add((table.Pid, d.Fd, d.Description));
            }
        }
    }

    private static bool Same(int pid1, int fd1, int pid2, int fd2) =>
        Interop.syscall(Syscalls.kcmp, pid1, pid2, Interop.KCMP_FILE, fd1, fd2) == 0;
}
