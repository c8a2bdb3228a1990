using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Tracing;

namespace CrCheckpoint.Engine.State.Credentials;

/// <summary>
/// Gives a restarted process its user, group and supplementary group ids back. Credentials belong
/// to each thread, not to the process (glibc's setuid signals every thread to make the call), so
/// every thread makes these calls itself, and last: creating threads with their original ids needs
/// the privilege the calls give up.
/// </summary>
public static class CredentialsRestore
{
    /// <summary>The supplementary groups as setgroups reads them (gid_t each), for the calls to find at the address they are given.</summary>
    public static byte[] GroupsData(CredentialsRecord c) => NeedsRestore(c) ? c.Groups.SelectMany(BitConverter.GetBytes).ToArray() : [];

    public static List<(string Name, RemoteCall Call)> Calls(CredentialsRecord c, ulong groupsAt)
    {
        if (!NeedsRestore(c)) return [];
        return
        [
            ("setgroups", new RemoteCall(Syscalls.setgroups, c.Groups.Length, (long)groupsAt)),
            ("setresgid", new RemoteCall(Syscalls.setresgid, c.Gids[0], c.Gids[1], c.Gids[2])),
            ("setresuid", new RemoteCall(Syscalls.setresuid, c.Uids[0], c.Uids[1], c.Uids[2])),
        ];
    }

    /// <summary>A process of root (the engine's own identity) keeps what it was created with.</summary>
    public static bool NeedsRestore(CredentialsRecord c) =>
        c.Uids.Length >= 3 && c.Gids.Length >= 3 && !(c.Uids.All(u => u == 0) && c.Gids.All(g => g == 0));
}
