using CrCheckpoint.Engine.Native;
using Microsoft.Win32.SafeHandles;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>
/// A unix socket that was made and never bound, connected or listened on: all it holds is its type
/// and its options, so a new socket with those is the same socket. (One whose peer went away is
/// not this: it stays connected to nothing, with a queue and end-of-file, and is refused.)
/// </summary>
public static class StandaloneUnixSocket
{
    private const int TCP_CLOSE = 7, O_NONBLOCK = 0x800;

    public static bool Is(UnixSocketInfo? unix) =>
        unix is { PeerInode: 0, Name: null or "", State: TCP_CLOSE, ReceiveQueue: 0 };

    public static FileDescriptorRecord Record(FileDescriptorRecord r, UnixSocketInfo unix, SocketOptionsRecord? options) => new()
    {
        Fd = r.Fd, Kind = FileDescriptorKind.UnixSocket, Path = r.Path, Flags = r.Flags, CloseOnExec = r.CloseOnExec,
        Identity = r.Identity, Inode = r.Inode, SocketType = unix.Type, SocketOptions = options,
    };

    public static SafeFileHandle Create(FileDescriptorRecord d)
    {
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
