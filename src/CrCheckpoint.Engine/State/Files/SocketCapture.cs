using CrCheckpoint.Engine.Native;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>
/// Reads what waits in a unix socket's receive queue without taking it: the engine pulls the socket
/// in with pidfd_getfd and peeks, walking the queue with SO_PEEK_OFF (the program's own peek offset
/// is put back afterwards). A stream gives its bytes in chunks (the kernel stops a peek where the
/// writer or the ancillary data changes) up to what SIOCINQ counted; datagrams and seqpackets
/// message by message, until the queue says EAGAIN. A seqpacket socket shut for reading says
/// end-of-file (0) instead of EAGAIN for ever, so there the count of queued bytes ends the walk.
/// Descriptors or credentials riding along (SCM_RIGHTS, SCM_CREDENTIALS) refuse the checkpoint:
/// the bytes alone would come back without them.
/// </summary>
public static unsafe class SocketCapture
{
    private const int MaxQueue = 16 << 20, MaxMessages = 1 << 20, SIOCINQ = 0x541B, EAGAIN = 11, ControlSize = 4096;

    public static (SocketDataRecord Meta, byte[] Data) Capture(int pid, int fd, FileDescriptorRecord socket)
    {
        var local = -1;
        var peekOffset = -1;
        try
        {
            local = ForeignDescriptor.Copy(pid, fd);
            var buffer = new byte[MaxQueue];
            var control = stackalloc byte[ControlSize];
            var lengths = new List<int>();
            var total = 0;
            var queued = 0;
            ioctl(local, SIOCINQ, &queued);
            peekOffset = SocketOption.Get(local, SOL_SOCKET, SO_PEEK_OFF);
            var zero = 0;
            setsockopt(local, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(int));
            var stream = socket.SocketType == SOCK_STREAM;
            fixed (byte* b = buffer)
            {
                for (var round = 0; ; round++)
                {
                    if (round == MaxMessages)
                        throw new UnsupportedStateException(pid, $"descriptor {fd}: the queue of this unix socket holds more than {MaxMessages} messages; this version cannot save it");
                    if (stream && total >= queued) break;
                    var iov = new IoVector { Base = b + total, Length = (nuint)(buffer.Length - total) };
                    var message = new MessageHeader { Iov = &iov, IovLength = 1, Control = control, ControlLength = ControlSize };
                    var n = recvmsg(local, &message, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                    if (n < 0)
                    {
                        var errno = ErrnoCheck.LastErrno;
                        if (errno == EAGAIN) break;
                        throw new UnsupportedStateException(pid, $"descriptor {fd}: the queue of this unix socket cannot be read: {Marshal.GetPInvokeErrorMessage(errno)}");
                    }
                    Ancillary(pid, fd, &message);
                    if ((message.Flags & MSG_TRUNC) != 0 || (n > 0 && total + n >= buffer.Length))
                        throw new UnsupportedStateException(pid, $"descriptor {fd}: more than {MaxQueue} bytes wait in this unix socket; this version cannot save them");
                    // 0 from a stream is end-of-file; from a seqpacket, end-of-file once every queued byte is in.
                    if (n == 0 && (stream || (socket.SocketType == SOCK_SEQPACKET && total >= queued))) break;
                    lengths.Add((int)n);
                    total += (int)n;
                }
            }
            if (stream) lengths.Clear();
            return (new SocketDataRecord { Inode = socket.Inode, SocketType = socket.SocketType, MessageLengths = lengths.ToArray() },
                buffer.AsSpan(0, total).ToArray());
        }
        finally
        {
            if (local >= 0)
            {
                setsockopt(local, SOL_SOCKET, SO_PEEK_OFF, &peekOffset, sizeof(int));
                close(local);
            }
        }
    }

    /// <summary>Refuses a message with descriptors or credentials attached; descriptors a peek handed to the engine are closed.</summary>
    private static void Ancillary(int pid, int fd, MessageHeader* message)
    {
        var rights = 0;
        var credentials = false;
        var control = (byte*)message->Control;
        var length = (long)message->ControlLength;
        for (long at = 0; at + 16 <= length;)
        {
            // struct cmsghdr: size_t len, int level, int type, then the data.
            var cmsgLength = (long)*(ulong*)(control + at);
            if (cmsgLength < 16 || at + cmsgLength > length) break;
            var level = *(int*)(control + at + 8);
            var type = *(int*)(control + at + 12);
            if (level == SOL_SOCKET && type == SCM_RIGHTS)
            {
                var fds = (int*)(control + at + 16);
                for (var i = 0; i < (cmsgLength - 16) / 4; i++, rights++) close(fds[i]);
            }
            if (level == SOL_SOCKET && type == SCM_CREDENTIALS) credentials = true;
            at += (cmsgLength + 7) & ~7;
        }
        if (rights > 0 || (message->Flags & MSG_CTRUNC) != 0)
            throw new UnsupportedStateException(pid,
                $"descriptor {fd} is a unix socket with file descriptors in flight in its queue (sent with SCM_RIGHTS, not yet received); this version cannot save them");
        if (credentials)
            throw new UnsupportedStateException(pid,
                $"descriptor {fd} is a unix socket with SO_PASSCRED whose queued messages carry their senders' credentials (SCM_CREDENTIALS); this version cannot give them back");
    }
}
