using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Restart;
using Microsoft.Win32.SafeHandles;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>
/// Puts a server's listening unix socket back: a new socket bound to the same name, with the same
/// backlog, its socket file with the same mode and owner. The checkpointed process, killed, left its
/// socket file behind with nobody listening on it: that file is replaced. A file some live socket
/// is still bound to (the original process still runs, or another server took the name) is not,
/// and the restart is refused before anything is built.
/// </summary>
public static class ListeningSocketRestore
{
    private const int EADDRINUSE = 98;

    /// <summary>Refuses a name that a live socket holds.</summary>
    public static void Check(FileDescriptorRecord d, PathRelocator relocate, int? pid, Lazy<Dictionary<ulong, UnixSocketInfo>> sockets)
    {
        var name = Name(d, relocate);
        if (name.StartsWith('@'))
        {
            if (sockets.Value.Values.Any(s => s.Name == name))
                throw InUse(name, d, pid);
            return;
        }
        if (SocketFileInode(name) is { } inode && sockets.Value.Values.Any(s => s.FileInode == inode))
            throw InUse(name, d, pid);
    }

    public static SafeFileHandle Listen(FileDescriptorRecord d, PathRelocator relocate, MessageLog log) => Bind(d, relocate, log, listen: true);

    /// <summary>
    /// A new socket bound to the saved name, listening when <paramref name="listen"/> (otherwise a
    /// socket that was bound and not used yet), with its options, socket file and shutdown state.
    /// </summary>
    public static unsafe SafeFileHandle Bind(FileDescriptorRecord d, PathRelocator relocate, MessageLog log, bool listen)
    {
        var name = Name(d, relocate);
        var address = Address(name);
        var fd = (int)ErrnoCheck.Check(socket(AF_UNIX, d.SocketType | SOCK_CLOEXEC, 0), "socket(AF_UNIX)");
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            SocketOptionState.Apply(fd, d.SocketOptions, d.Fd, beforeBind: true);
            SocketOptionState.Apply(fd, d.SocketOptions, d.Fd, beforeBind: false);
            // Checked before anything was built: a socket file still here is the one the checkpointed process left.
            if (!name.StartsWith('@') && SocketFileInode(name) is not null) unlinkat(AT_FDCWD, name, 0);
            fixed (byte* a = address)
            {
                if (bind(fd, a, address.Length) != 0)
                {
                    var errno = ErrnoCheck.LastErrno;
                    throw errno == EADDRINUSE
                        ? InUse(name, d, null)
                        : new RestartException(RestartFailure.FileMissing,
                            $"cannot bind the listening socket of descriptor {d.Fd} to {name}: {Marshal.GetPInvokeErrorMessage(errno)}. Create its directory or use -Relocate.", name);
                }
            }
            if (!name.StartsWith('@'))
            {
                fchmodat(AT_FDCWD, name, (int)d.SocketFileMode, 0);
                if (d.SocketFileOwner != geteuid() || d.SocketFileGroup != getegid())
                    fchownat(AT_FDCWD, name, d.SocketFileOwner, d.SocketFileGroup, AT_SYMLINK_NOFOLLOW);
            }
            if (listen)
            {
                ErrnoCheck.Check(Interop.listen(fd, d.ListenBacklog), $"listen on {name}");
                log.Add($"listening again on {name} (backlog {d.ListenBacklog})");
                if (d.PendingConnections > 0)
                    log.Add($"{d.PendingConnections} connection(s) waiting to be accepted on {name} at the checkpoint are not carried over");
            }
            else log.Add($"unix socket bound to {name} again");
            SocketOptionState.Shutdown(fd, d.SocketOptions, d.Fd);
            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static string Name(FileDescriptorRecord d, PathRelocator relocate) =>
        d.SocketName is { } name && !name.StartsWith('@') ? relocate.Map(name) : d.SocketName ?? "";

    /// <summary>sockaddr_un: the family, then the path with its NUL, or a NUL and the abstract name.</summary>
    private static byte[] Address(string name)
    {
        var path = name.StartsWith('@')
            ? [0, .. System.Text.Encoding.UTF8.GetBytes(name[1..])]
            : System.Text.Encoding.UTF8.GetBytes(name + "\0");
        if (path.Length > 108)
            throw new RestartException(RestartFailure.Unsupported, $"the socket name {name} is longer than a unix socket address allows; use -Relocate to a shorter path.", name);
        var address = new byte[2 + path.Length];
        BitConverter.TryWriteBytes(address, (ushort)AF_UNIX);
        path.CopyTo(address, 2);
        return address;
    }

    private static unsafe uint? SocketFileInode(string path)
    {
        Stat st;
        return fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.FileType == Stat.S_IFSOCK ? (uint)st.Ino : null;
    }

    private static RestartException InUse(string name, FileDescriptorRecord d, int? pid) =>
        new(RestartFailure.FileInUse,
            $"{name}, where descriptor {d.Fd}{(pid is null ? "" : $" of process {pid}")} listened, is held by a live socket (is the checkpointed process still running?). Stop the process that listens there, or use -Relocate to listen at another path.",
            name);
}
