using System.Globalization;
using System.Net;
using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Restart;
using Microsoft.Win32.SafeHandles;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Files;

public static unsafe class InetSocketState
{
    private const int AF_INET = 2, AF_INET6 = 10, SOCK_STREAM = 1, SOCK_DGRAM = 2, SOCK_RAW = 3, IPPROTO_TCP = 6, IPPROTO_UDP = 17, IPPROTO_IPV6 = 41;
    private const int SO_REUSEADDR = 2, SO_TYPE = 3, SO_REUSEPORT = 15, SO_ACCEPTCONN = 30, SO_PROTOCOL = 38, SO_DOMAIN = 39, IPV6_V6ONLY = 26;
    private const int TCP_ESTABLISHED = 1, TCP_CLOSE = 7;

    /// <summary>
    /// The socket as the engine's own copy of it tells (pidfd_getfd: looking changes nothing); null
    /// when it is not an internet socket. An established TCP connection is read through TCP_REPAIR
    /// into <paramref name="connections"/>, which keeps it in repair mode until the checkpoint ends;
    /// without one (a dry run) it is only looked at.
    /// </summary>
    public static InetSocketRecord? Capture(int pid, int fd, ulong inode, TcpRepairHold? connections)
    {
        var copy = ForeignDescriptor.Copy(pid, fd);
        try
        {
            var family = SocketOption.Get(copy, SOL_SOCKET, SO_DOMAIN);
            if (family is not (AF_INET or AF_INET6)) return null;
            var type = SocketOption.Get(copy, SOL_SOCKET, SO_TYPE);
            var protocol = SocketOption.Get(copy, SOL_SOCKET, SO_PROTOCOL);
            var listening = SocketOption.Get(copy, SOL_SOCKET, SO_ACCEPTCONN) == 1;
            var local = Name(copy, peer: false);
            var peer = Name(copy, peer: true);
            if (type is not (SOCK_STREAM or SOCK_DGRAM or SOCK_RAW) || (type != SOCK_RAW && ProcNetTable(type, protocol) is null))
                throw new UnsupportedStateException(pid, $"descriptor {fd} is an internet socket of a kind this version cannot checkpoint (type {type}, protocol {protocol})");
            var (state, queued) = ProcNet(pid, family, type == SOCK_RAW ? "raw" : ProcNetTable(type, protocol)!, inode);
            var backlog = 0;
            if (listening && InetSocketDiag.Listeners(family).TryGetValue(inode, out var listener))
                (backlog, queued) = listener;
            var reuseAddress = SocketOption.Get(copy, SOL_SOCKET, SO_REUSEADDR) == 1;
            var reusePort = SocketOption.Get(copy, SOL_SOCKET, SO_REUSEPORT) == 1;
            var v6Only = family == AF_INET6 && SocketOption.Get(copy, IPPROTO_IPV6, IPV6_V6ONLY) == 1;
            TcpConnectionRecord? tcp = null;
            if (type == SOCK_STREAM && !listening && state == TCP_ESTABLISHED && peer is not null)
            {
                if (connections is not null)
                {
                    tcp = TcpConnectionState.Capture(pid, fd, copy, connections);
                    copy = -1; // the hold keeps it
                }
            }
            else if (type == SOCK_STREAM && !listening && state != TCP_CLOSE)
                throw new UnsupportedStateException(pid,
                    $"descriptor {fd} is a TCP connection{(peer is null ? "" : $" with {peer}")} that is opening or closing (state {state}); this version checkpoints established connections only");
            if (type != SOCK_STREAM && queued > 0)
                throw new UnsupportedStateException(pid,
                    $"descriptor {fd} is a {(type == SOCK_RAW ? "raw" : "UDP")} socket{(local is null ? "" : $" on {local}")} with datagrams waiting to be read; this version cannot carry them over (read them first, or checkpoint again)");
            return new InetSocketRecord
            {
                Family = family, Type = type, Protocol = protocol, Local = local,
                Peer = type == SOCK_DGRAM || tcp is not null ? peer : null,
                Listening = listening, Backlog = listening ? backlog : 0, Waiting = tcp is null ? queued : 0,
                ReuseAddress = reuseAddress, ReusePort = reusePort, V6Only = v6Only,
                Tcp = tcp,
            };
        }
        finally
        {
            if (copy >= 0) close(copy);
        }
    }

    /// <summary>
    /// The /proc/PID/net table of a kind of socket that binds, connects and has options and nothing else:
    /// TCP, UDP, UDP-Lite, and the datagram "ping" sockets of ICMP and ICMPv6. Null for another kind.
    /// </summary>
    private static string? ProcNetTable(int type, int protocol) => (type, protocol) switch
    {
        (SOCK_STREAM, IPPROTO_TCP) => "tcp",
        (SOCK_DGRAM, IPPROTO_UDP) => "udp",
        (SOCK_DGRAM, IPPROTO_UDPLITE) => "udplite",
        (SOCK_DGRAM, IPPROTO_ICMP or IPPROTO_ICMPV6) => "icmp",
        _ => null,
    };

    private const int IPPROTO_ICMP = 1, IPPROTO_ICMPV6 = 58, IPPROTO_UDPLITE = 136;

    /// <summary>State and receive queue (bytes; for a listener, connections waiting) from /proc/PID/net.</summary>
    private static (int State, int Queued) ProcNet(int pid, int family, string kind, ulong inode)
    {
        var table = kind + (family == AF_INET6 ? "6" : "");
        foreach (var line in File.ReadLines($"/proc/{pid}/net/{table}").Skip(1))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 10 || f[9] != inode.ToString(CultureInfo.InvariantCulture)) continue;
            return (int.Parse(f[3], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                int.Parse(f[4].Split(':')[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture));
        }
        return (TCP_CLOSE, 0);
    }

    private static string? Name(int fd, bool peer)
    {
        var buffer = stackalloc byte[128];
        var length = 128;
        var r = peer ? getpeername(fd, buffer, &length) : getsockname(fd, buffer, &length);
        if (r != 0) return null;
        var family = *(ushort*)buffer;
        var port = (buffer[2] << 8) | buffer[3];
        if (family == AF_INET)
            return $"{new IPAddress(new ReadOnlySpan<byte>(buffer + 4, 4))}:{port}";
        if (family == AF_INET6)
            return $"[{new IPAddress(new ReadOnlySpan<byte>(buffer + 8, 16), *(uint*)(buffer + 24))}]:{port}";
        return null;
    }

    /// <summary>A new socket with the saved options, bound to the saved address and listening (or connected) again.</summary>
    /// <param name="connections">Where a rebuilt TCP connection waits in repair mode for the others.</param>
    public static SafeFileHandle Create(InetSocketRecord s, int openFlags, int forFd, MessageLog log, SocketOptionsRecord? options = null,
        RestoredConnections? connections = null)
    {
        var fd = (int)ErrnoCheck.Check(socket(s.Family, s.Type | SOCK_CLOEXEC | (openFlags & O_NONBLOCK), s.Protocol), "socket");
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            SocketOptionState.Apply(fd, options, forFd, beforeBind: true);
            if (s.Tcp is { } tcp && s.Local is { } ends && s.Peer is { } other
                && Address(s.Family, ends) is { } near && Address(s.Family, other) is { } far)
            {
                TcpConnectionState.Restore(fd, tcp, near, far, $"the TCP connection {ends} - {other} (descriptor {forFd})");
                // After the connection is up again: keepalive, for one, only starts its timer on a connected socket.
                SocketOptionState.Apply(fd, options, forFd, beforeBind: false);
                var held = connections ?? new RestoredConnections();
                held.Add(fd, options, forFd);
                if (connections is null) held.Release();
                log.Add($"TCP connection {ends} - {other} going on ({tcp.ReceiveQueue.Length} bytes to read, {tcp.SendQueue.Length} unacknowledged)");
                return handle;
            }
            SocketOptionState.Apply(fd, options, forFd, beforeBind: false);
            if (s.ReuseAddress) SetOption(fd, SOL_SOCKET, SO_REUSEADDR);
            if (s.ReusePort) SetOption(fd, SOL_SOCKET, SO_REUSEPORT);
            if (s.V6Only) SetOption(fd, IPPROTO_IPV6, IPV6_V6ONLY);
            if (s.Local is { } local && Address(s.Family, local) is { } address && !IsUnbound(local))
            {
                fixed (byte* a = address)
                {
                    if (bind(fd, a, address.Length) != 0)
                    {
                        var errno = ErrnoCheck.LastErrno;
                        throw new RestartException(errno == 98 ? RestartFailure.FileInUse : RestartFailure.Failed,
                            $"cannot bind descriptor {forFd} to {local} again: {Marshal.GetPInvokeErrorMessage(errno)}" +
                            (errno == 98 ? " (is the checkpointed process still running, or has another taken the port?)." : "."), local);
                    }
                }
            }
            if (s.Listening)
            {
                ErrnoCheck.Check(listen(fd, s.Backlog), $"listen on {s.Local}");
                log.Add($"listening again on {(s.Protocol == IPPROTO_TCP ? "TCP" : "")} {s.Local} (backlog {s.Backlog})");
                if (s.Waiting > 0) log.Add($"{s.Waiting} connection(s) waiting to be accepted on {s.Local} at the checkpoint are not carried over");
            }
            else if (s.Waiting > 0)
                log.Add($"{s.Waiting} byte(s) of datagrams waiting on {s.Local} at the checkpoint are not carried over");
            if (s.Peer is { } peer && Address(s.Family, peer) is { } to)
            {
                fixed (byte* a = to)
                    ErrnoCheck.Check(connect(fd, a, to.Length), $"connect to {peer}");
            }
            SocketOptionState.Shutdown(fd, options, forFd);
            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static bool IsUnbound(string address) => address.EndsWith(":0", StringComparison.Ordinal) &&
        (address.StartsWith("0.0.0.0:", StringComparison.Ordinal) || address.StartsWith("[::]:", StringComparison.Ordinal));

    private static void SetOption(int fd, int level, int name)
    {
        var one = 1;
        ErrnoCheck.Check(setsockopt(fd, level, name, &one, sizeof(int)), $"setsockopt({name})");
    }

    /// <summary>sockaddr_in or sockaddr_in6 for "address:port".</summary>
    private static byte[]? Address(int family, string text)
    {
        if (!IPEndPoint.TryParse(text, out var endpoint)) return null;
        var bytes = new byte[family == AF_INET ? 16 : 28];
        BitConverter.TryWriteBytes(bytes, (ushort)family);
        bytes[2] = (byte)(endpoint.Port >> 8);
        bytes[3] = (byte)endpoint.Port;
        if (family == AF_INET) endpoint.Address.MapToIPv4().GetAddressBytes().CopyTo(bytes, 4);
        else
        {
            endpoint.Address.MapToIPv6().GetAddressBytes().CopyTo(bytes, 8);
            BitConverter.TryWriteBytes(bytes.AsSpan(24), (uint)endpoint.Address.ScopeId);
        }
        return bytes;
    }
}
