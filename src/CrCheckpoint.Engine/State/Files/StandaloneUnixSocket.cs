using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Restart;
using Microsoft.Win32.SafeHandles;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>
/// A unix socket that was made and never connected or listened on, perhaps bound to a name: all it
/// holds is its type, its name and its options, so a new socket with those is the same socket. (One
/// whose peer went away is not this: it stays connected to nothing, with a queue and end-of-file, and
/// is refused; so is a bound datagram socket with messages waiting, which carry their senders' names.)
/// </summary>
public static class StandaloneUnixSocket
{
    private const int TCP_ESTABLISHED = 1, TCP_CLOSE = 7, O_NONBLOCK = 0x800;

    public static bool Is(UnixSocketInfo? unix) =>
        unix is { PeerInode: 0, Name: null or "", State: TCP_CLOSE, ReceiveQueue: 0 };

    /// <summary>Bound to a name, but neither connected nor listening, and nothing waiting in it.</summary>
    public static bool IsBound(UnixSocketInfo? unix) =>
        unix is { PeerInode: 0, Name.Length: > 0, State: TCP_CLOSE, ReceiveQueue: 0 };

    /// <summary>
    /// One end of a socket pair whose other end the program closed: still connected, to nothing,
    /// with what was sent before the close waiting in it. A client whose server hung up looks the
    /// same to sock_diag, but its peer had a name (getpeername tells), which a pair cannot give back.
    /// </summary>
    public static unsafe bool IsOrphanedPairEnd(int pid, int fd, UnixSocketInfo? unix)
    {
        if (unix is not { PeerInode: 0, Name: null or "", State: TCP_ESTABLISHED }) return false;
        var copy = ForeignDescriptor.Copy(pid, fd);
        try
        {
            var address = stackalloc byte[112];
            var length = 112;
            return getpeername(copy, address, &length) == 0 && length <= 2;
        }
        finally
        {
            close(copy);
        }
    }

    public static FileDescriptorRecord Record(FileDescriptorRecord r, UnixSocketInfo unix, SocketOptionsRecord? options) => new()
    {
        Fd = r.Fd, Kind = FileDescriptorKind.UnixSocket, Path = r.Path, Flags = r.Flags, CloseOnExec = r.CloseOnExec,
        Identity = r.Identity, Inode = r.Inode, SocketType = unix.Type, SocketOptions = options,
    };

    /// <summary>
    /// The socket again; one bound to a name is bound to it again, after the same check as for a
    /// listener that no live socket holds that name (its socket file is then replaced).
    /// </summary>
    public static SafeFileHandle Create(FileDescriptorRecord d, PathRelocator relocate, MessageLog log)
    {
        if (d.SocketName is { Length: > 0 })
        {
            ListeningSocketRestore.Check(d, relocate, null, new Lazy<Dictionary<ulong, UnixSocketInfo>>(UnixSocketDiag.Dump));
            return ListeningSocketRestore.Bind(d, relocate, log, listen: false);
        }
        var fd = (int)ErrnoCheck.Check(socket(AF_UNIX, d.SocketType | SOCK_CLOEXEC | (d.Flags & O_NONBLOCK), 0), "socket(AF_UNIX)");
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            SocketOptionState.Apply(fd, d.SocketOptions, d.Fd, beforeBind: true);
            SocketOptionState.Apply(fd, d.SocketOptions, d.Fd, beforeBind: false);
            SocketOptionState.Shutdown(fd, d.SocketOptions, d.Fd);
            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }
}
