using CrCheckpoint.Engine.Native;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>
/// Reads what waits in a unix socket's receive queue without taking it: the engine pulls the socket
/// in with pidfd_getfd and peeks. A stream socket gives its whole queue to one MSG_PEEK; for
/// datagrams SO_PEEK_OFF walks message by message, and is switched off again afterwards.
/// </summary>
public static unsafe class SocketCapture
{
    private const int MaxQueue = 16 << 20;

    public static (SocketDataRecord Meta, byte[] Data) Capture(int pid, int fd, FileDescriptorRecord socket)
    {
        var local = -1;
        try
        {
            local = ForeignDescriptor.Copy(pid, fd);
            var buffer = new byte[MaxQueue];
            var lengths = new List<int>();
            var total = 0;
            fixed (byte* b = buffer)
            {
                if (socket.SocketType == SOCK_STREAM)
                {
                    var n = recv(local, b, (nuint)buffer.Length, MSG_PEEK | MSG_DONTWAIT);
                    total = n > 0 ? (int)n : 0;
                }
                else
                {
                    var offset = 0;
                    setsockopt(local, SOL_SOCKET, SO_PEEK_OFF, &offset, sizeof(int));
                    try
                    {
                        while (total < buffer.Length)
                        {
                            var n = recv(local, b + total, (nuint)(buffer.Length - total), MSG_PEEK | MSG_DONTWAIT);
                            if (n < 0) break;
                            lengths.Add((int)n);
                            total += (int)n;
                        }
                    }
                    finally
                    {
                        var off = -1;
                        setsockopt(local, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(int));
                    }
                }
            }
            return (new SocketDataRecord { Inode = socket.Inode, SocketType = socket.SocketType, MessageLengths = lengths.ToArray() },
                buffer.AsSpan(0, total).ToArray());
        }
        finally
        {
            if (local >= 0) close(local);
        }
    }
}
