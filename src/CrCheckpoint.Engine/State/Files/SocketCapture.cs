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
/// Pipe ends riding along (SCM_RIGHTS) are noted with their message and sent again with it at
/// restart; other descriptors, a pipe in flight with bytes in it, and credentials (SCM_CREDENTIALS)
/// refuse the checkpoint: the bytes alone would come back without them. A peek hands the engine its
/// own copies of descriptors in flight; it closes them.
/// </summary>
public static unsafe class SocketCapture
{
    private const int MaxQueue = 16 << 20, MaxMessages = 1 << 20, SIOCINQ = FIONREAD, EAGAIN = 11, ControlSize = 4096;
    private const int F_GETFL = 3, O_CLOEXEC = 0x80000;

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
            var inFlight = new List<InFlightDescriptors>();
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
                    if (Ancillary(pid, fd, &message) is { Count: > 0 } pipes)
                        inFlight.Add(new InFlightDescriptors { Message = lengths.Count, Pipes = pipes });
                    if ((message.Flags & MSG_TRUNC) != 0 || (n > 0 && total + n >= buffer.Length))
                        throw new UnsupportedStateException(pid, $"descriptor {fd}: more than {MaxQueue} bytes wait in this unix socket; this version cannot save them");
                    // 0 from a stream is end-of-file; from a seqpacket, end-of-file once every queued byte is in.
                    if (n == 0 && (stream || (socket.SocketType == SOCK_SEQPACKET && total >= queued))) break;
                    lengths.Add((int)n);
                    total += (int)n;
                }
            }
            // A stream's chunks matter only where descriptors ride on them.
            if (stream && inFlight.Count == 0) lengths.Clear();
            return (new SocketDataRecord
                {
                    Inode = socket.Inode, SocketType = socket.SocketType, MessageLengths = lengths.ToArray(),
                    InFlight = inFlight.Count > 0 ? inFlight : null,
                },
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

    /// <summary>
    /// The pipe ends a message carries; refuses other descriptors and credentials. The copies a peek
    /// handed to the engine are closed.
    /// </summary>
    private static List<InFlightPipeEnd>? Ancillary(int pid, int fd, MessageHeader* message)
    {
        List<InFlightPipeEnd>? pipes = null;
        string? refused = null;
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
                for (var i = 0; i < (cmsgLength - 16) / 4; i++)
                {
                    var target = Proc.ProcFds.ReadLink($"/proc/self/fd/{fds[i]}") ?? "?";
                    var queued = 0;
                    if (target.StartsWith("pipe:[", StringComparison.Ordinal) && ioctl(fds[i], FIONREAD, &queued) == 0 && queued == 0)
                    {
                        var flags = fcntl(fds[i], F_GETFL, 0);
                        (pipes ??= []).Add(new InFlightPipeEnd
                        {
                            Inode = ulong.Parse(target.AsSpan(6, target.Length - 7), System.Globalization.CultureInfo.InvariantCulture),
                            ReadEnd = (flags & 3) == 0, Flags = flags & ~O_CLOEXEC,
                        });
                    }
                    else refused ??= target.StartsWith("pipe:[", StringComparison.Ordinal) ? $"{target} with {queued} bytes in it" : target;
                    close(fds[i]);
                }
            }
            if (level == SOL_SOCKET && type == SCM_CREDENTIALS) credentials = true;
            at += (cmsgLength + 7) & ~7;
        }
        if (refused is not null || (message->Flags & MSG_CTRUNC) != 0)
            throw new UnsupportedStateException(pid,
                $"descriptor {fd} is a unix socket with file descriptors in flight in its queue (sent with SCM_RIGHTS, not yet received): {refused ?? "more than fit in one message"}; this version carries only empty pipe ends in flight");
        if (credentials)
            throw new UnsupportedStateException(pid,
                $"descriptor {fd} is a unix socket with SO_PASSCRED whose queued messages carry their senders' credentials (SCM_CREDENTIALS); this version cannot give them back");
        return pipes;
    }

    /// <summary>Sends one saved message again, with the engine's descriptors for what rode on it (SCM_RIGHTS).</summary>
    public static bool Resend(int sender, byte* data, int length, IReadOnlyList<int> rights)
    {
        if (rights.Count == 0) return send(sender, data, (nuint)length, 0) == length;
        var controlLength = 16 + rights.Count * 4;
        var control = stackalloc byte[(controlLength + 7) & ~7];
        new Span<byte>(control, (controlLength + 7) & ~7).Clear();
        *(ulong*)control = (ulong)controlLength;
        *(int*)(control + 8) = SOL_SOCKET;
        *(int*)(control + 12) = SCM_RIGHTS;
        for (var i = 0; i < rights.Count; i++) ((int*)(control + 16))[i] = rights[i];
        var iov = new IoVector { Base = data, Length = (nuint)length };
        var message = new MessageHeader { Iov = &iov, IovLength = 1, Control = control, ControlLength = (nuint)((controlLength + 7) & ~7) };
        return sendmsg(sender, &message, 0) == length;
    }
}
