using CrCheckpoint.Engine.Native;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>
/// Processes made with clone(CLONE_FILES) share one table of descriptors: a descriptor one opens
/// appears in the other. A restart gives each process a table of its own, which would silently
/// unshare them, so such a checkpoint is refused (kcmp KCMP_FILES tells).
/// </summary>
public static class SharedFileTables
{
    private const int KCMP_FILES = 2;

    public static void Refuse(IReadOnlyList<FileTableRecord> tables)
    {
        for (var i = 0; i < tables.Count; i++)
            for (var j = i + 1; j < tables.Count; j++)
                if (Interop.syscall(Syscalls.kcmp, tables[i].Pid, tables[j].Pid, KCMP_FILES, 0, 0) == 0)
                    throw new UnsupportedStateException(tables[j].Pid,
                        $"it shares its table of descriptors with process {tables[i].Pid} (clone with CLONE_FILES); a restart would give each its own table, so this version cannot checkpoint them");
    }
}
