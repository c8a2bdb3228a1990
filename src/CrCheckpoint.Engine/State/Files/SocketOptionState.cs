using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Restart;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>
/// Socket options, filters and shutdown state: captured through the engine's own copy of the socket,
/// set again on the new socket at restart, read back before the process runs. At the checkpoint each
/// option that differs from a new socket's is tried on a scratch socket of the same kind first, so
/// that one that cannot be set back refuses the checkpoint instead of the restart.
/// </summary>
public static unsafe class SocketOptionState
{
    private const int AF_INET = 2, AF_INET6 = 10, SOCK_RAW = 3, SOL_RAW = 255, SOL_ICMPV6 = 58, IPPROTO_IP = 0, IPPROTO_TCP = 6, IPPROTO_UDP = 17, IPPROTO_IPV6 = 41;
    private const int SO_TYPE = 3, SO_SNDBUF = 7, SO_RCVBUF = 8, SO_PROTOCOL = 38, SO_DOMAIN = 39, SO_ACCEPTCONN = 30;
    private const int SO_SNDBUFFORCE = 32, SO_RCVBUFFORCE = 33, SO_ATTACH_FILTER = 26, SO_GET_FILTER = 26, SO_BUF_LOCK = 72;
    private const int SOCK_SNDBUF_LOCK = 1, SOCK_RCVBUF_LOCK = 2, ENOTCONN = 107, SHUT_RD = 0, SHUT_WR = 1, SHUT_RDWR = 2;
    private const int ValueSize = 64;

    [Flags]
    private enum Scope { Socket = 1, Ip = 2, Ipv6 = 4, Tcp = 8, Udp = 16, NotConnected = 32, BeforeBind = 64, NotStream = 128, Raw = 256 }

    /// <summary>
    /// The options looked at, in the order they are set back (multicast ones not on TCP). Left out on purpose: what the kernel
    /// keeps up by itself (SO_INCOMING_CPU, TCP_QUICKACK, IPV6_MTU, SO_ERROR), what cannot be set
    /// (SO_TYPE, SO_PEERCRED...), and options that only repeat others (SO_BINDTOIFINDEX, the _NEW
    /// timestamping variant). The buffer sizes count only when the program set them (SO_BUF_LOCK).
    /// </summary>
    private static readonly (int Level, int Option, string Name, Scope Scope)[] Table =
    [
        (SOL_SOCKET, 2, "SO_REUSEADDR", Scope.Socket | Scope.BeforeBind),
        (SOL_SOCKET, 15, "SO_REUSEPORT", Scope.Socket | Scope.BeforeBind),
        (SOL_SOCKET, 25, "SO_BINDTODEVICE", Scope.Socket | Scope.BeforeBind),
        (IPPROTO_IP, 15, "IP_FREEBIND", Scope.Ip | Scope.BeforeBind),
        (IPPROTO_IP, 19, "IP_TRANSPARENT", Scope.Ip | Scope.BeforeBind),
        (IPPROTO_IP, 24, "IP_BIND_ADDRESS_NO_PORT", Scope.Ip | Scope.BeforeBind),
        (IPPROTO_IPV6, 26, "IPV6_V6ONLY", Scope.Ipv6 | Scope.BeforeBind),
        (IPPROTO_IPV6, 75, "IPV6_TRANSPARENT", Scope.Ipv6 | Scope.BeforeBind),
        (IPPROTO_IPV6, 78, "IPV6_FREEBIND", Scope.Ipv6 | Scope.BeforeBind),

        (SOL_SOCKET, 1, "SO_DEBUG", Scope.Socket),
        (SOL_SOCKET, 5, "SO_DONTROUTE", Scope.Socket),
        (SOL_SOCKET, 6, "SO_BROADCAST", Scope.Socket),
        (SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF", Scope.Socket | Scope.BeforeBind),
        (SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF", Scope.Socket | Scope.BeforeBind),
        (SOL_SOCKET, SO_BUF_LOCK, "SO_BUF_LOCK", Scope.Socket | Scope.BeforeBind),
        (SOL_SOCKET, 9, "SO_KEEPALIVE", Scope.Socket),
        (SOL_SOCKET, 10, "SO_OOBINLINE", Scope.Socket),
        (SOL_SOCKET, 11, "SO_NO_CHECK", Scope.Socket),
        (SOL_SOCKET, 12, "SO_PRIORITY", Scope.Socket),
        (SOL_SOCKET, 13, "SO_LINGER", Scope.Socket),
        (SOL_SOCKET, 16, "SO_PASSCRED", Scope.Socket),
        (SOL_SOCKET, 18, "SO_RCVLOWAT", Scope.Socket),
        (SOL_SOCKET, 20, "SO_RCVTIMEO", Scope.Socket),
        (SOL_SOCKET, 21, "SO_SNDTIMEO", Scope.Socket),
        (SOL_SOCKET, 29, "SO_TIMESTAMP", Scope.Socket),
        (SOL_SOCKET, 35, "SO_TIMESTAMPNS", Scope.Socket),
        (SOL_SOCKET, 37, "SO_TIMESTAMPING", Scope.Socket),
        (SOL_SOCKET, 63, "SO_TIMESTAMP_NEW", Scope.Socket),
        (SOL_SOCKET, 64, "SO_TIMESTAMPNS_NEW", Scope.Socket),
        (SOL_SOCKET, 34, "SO_PASSSEC", Scope.Socket),
        (SOL_SOCKET, 36, "SO_MARK", Scope.Socket),
        (SOL_SOCKET, 40, "SO_RXQ_OVFL", Scope.Socket),
        (SOL_SOCKET, 41, "SO_WIFI_STATUS", Scope.Socket),
        (SOL_SOCKET, 42, "SO_PEEK_OFF", Scope.Socket),
        (SOL_SOCKET, 43, "SO_NOFCS", Scope.Socket),
        (SOL_SOCKET, 45, "SO_SELECT_ERR_QUEUE", Scope.Socket),
        (SOL_SOCKET, 46, "SO_BUSY_POLL", Scope.Socket),
        (SOL_SOCKET, 47, "SO_MAX_PACING_RATE", Scope.Socket),
        (SOL_SOCKET, 60, "SO_ZEROCOPY", Scope.Socket),
        (SOL_SOCKET, 61, "SO_TXTIME", Scope.Socket),
        (SOL_SOCKET, 69, "SO_PREFER_BUSY_POLL", Scope.Socket),
        (SOL_SOCKET, 70, "SO_BUSY_POLL_BUDGET", Scope.Socket),
        (SOL_SOCKET, 73, "SO_RESERVE_MEM", Scope.Socket),
        (SOL_SOCKET, 74, "SO_TXREHASH", Scope.Socket),
        (SOL_SOCKET, 75, "SO_RCVMARK", Scope.Socket),
        (SOL_SOCKET, 76, "SO_PASSPIDFD", Scope.Socket),

        (IPPROTO_IP, 1, "IP_TOS", Scope.Ip),
        (IPPROTO_IP, 2, "IP_TTL", Scope.Ip),
        (IPPROTO_IP, 3, "IP_HDRINCL", Scope.Ip),
        (IPPROTO_IP, 4, "IP_OPTIONS", Scope.Ip),
        (IPPROTO_IP, 6, "IP_RECVOPTS", Scope.Ip),
        (IPPROTO_IP, 7, "IP_RETOPTS", Scope.Ip),
        (IPPROTO_IP, 8, "IP_PKTINFO", Scope.Ip),
        (IPPROTO_IP, 10, "IP_MTU_DISCOVER", Scope.Ip),
        (IPPROTO_IP, 11, "IP_RECVERR", Scope.Ip),
        (IPPROTO_IP, 12, "IP_RECVTTL", Scope.Ip),
        (IPPROTO_IP, 13, "IP_RECVTOS", Scope.Ip),
        (IPPROTO_IP, 18, "IP_PASSSEC", Scope.Ip),
        (IPPROTO_IP, 20, "IP_RECVORIGDSTADDR", Scope.Ip),
        (IPPROTO_IP, 21, "IP_MINTTL", Scope.Ip),
        (IPPROTO_IP, 22, "IP_NODEFRAG", Scope.Ip),
        (IPPROTO_IP, 23, "IP_CHECKSUM", Scope.Ip),
        (IPPROTO_IP, 25, "IP_RECVFRAGSIZE", Scope.Ip),
        (IPPROTO_IP, 26, "IP_RECVERR_RFC4884", Scope.Ip),
        (IPPROTO_IP, 32, "IP_MULTICAST_IF", Scope.Ip | Scope.NotStream),
        (IPPROTO_IP, 33, "IP_MULTICAST_TTL", Scope.Ip | Scope.NotStream),
        (IPPROTO_IP, 34, "IP_MULTICAST_LOOP", Scope.Ip | Scope.NotStream),
        (IPPROTO_IP, 49, "IP_MULTICAST_ALL", Scope.Ip | Scope.NotStream),
        (IPPROTO_IP, 50, "IP_UNICAST_IF", Scope.Ip),
        (IPPROTO_IP, 51, "IP_LOCAL_PORT_RANGE", Scope.Ip),

        (IPPROTO_IPV6, 11, "IPV6_FLOWINFO", Scope.Ipv6),
        (IPPROTO_IPV6, 16, "IPV6_UNICAST_HOPS", Scope.Ipv6),
        (IPPROTO_IPV6, 17, "IPV6_MULTICAST_IF", Scope.Ipv6 | Scope.NotStream),
        (IPPROTO_IPV6, 18, "IPV6_MULTICAST_HOPS", Scope.Ipv6 | Scope.NotStream),
        (IPPROTO_IPV6, 19, "IPV6_MULTICAST_LOOP", Scope.Ipv6 | Scope.NotStream),
        (IPPROTO_IPV6, 22, "IPV6_ROUTER_ALERT", Scope.Ipv6),
        (IPPROTO_IPV6, 23, "IPV6_MTU_DISCOVER", Scope.Ipv6),
        (IPPROTO_IPV6, 25, "IPV6_RECVERR", Scope.Ipv6),
        (IPPROTO_IPV6, 29, "IPV6_MULTICAST_ALL", Scope.Ipv6 | Scope.NotStream),
        (IPPROTO_IPV6, 30, "IPV6_ROUTER_ALERT_ISOLATE", Scope.Ipv6),
        (IPPROTO_IPV6, 31, "IPV6_RECVERR_RFC4884", Scope.Ipv6),
        (IPPROTO_IPV6, 33, "IPV6_FLOWINFO_SEND", Scope.Ipv6),
        (IPPROTO_IPV6, 49, "IPV6_RECVPKTINFO", Scope.Ipv6),
        (IPPROTO_IPV6, 51, "IPV6_RECVHOPLIMIT", Scope.Ipv6),
        (IPPROTO_IPV6, 53, "IPV6_RECVHOPOPTS", Scope.Ipv6),
        (IPPROTO_IPV6, 56, "IPV6_RECVRTHDR", Scope.Ipv6),
        (IPPROTO_IPV6, 58, "IPV6_RECVDSTOPTS", Scope.Ipv6),
        (IPPROTO_IPV6, 60, "IPV6_RECVPATHMTU", Scope.Ipv6),
        (IPPROTO_IPV6, 62, "IPV6_DONTFRAG", Scope.Ipv6),
        (IPPROTO_IPV6, 66, "IPV6_RECVTCLASS", Scope.Ipv6),
        (IPPROTO_IPV6, 67, "IPV6_TCLASS", Scope.Ipv6),
        (IPPROTO_IPV6, 70, "IPV6_AUTOFLOWLABEL", Scope.Ipv6),
        (IPPROTO_IPV6, 72, "IPV6_ADDR_PREFERENCES", Scope.Ipv6),
        (IPPROTO_IPV6, 73, "IPV6_MINHOPCOUNT", Scope.Ipv6),
        (IPPROTO_IPV6, 74, "IPV6_RECVORIGDSTADDR", Scope.Ipv6),
        (IPPROTO_IPV6, 76, "IPV6_UNICAST_IF", Scope.Ipv6),
        (IPPROTO_IPV6, 77, "IPV6_RECVFRAGSIZE", Scope.Ipv6),

        (IPPROTO_TCP, 1, "TCP_NODELAY", Scope.Tcp),
        (IPPROTO_TCP, 2, "TCP_MAXSEG", Scope.Tcp | Scope.NotConnected),
        (IPPROTO_TCP, 3, "TCP_CORK", Scope.Tcp),
        (IPPROTO_TCP, 4, "TCP_KEEPIDLE", Scope.Tcp),
        (IPPROTO_TCP, 5, "TCP_KEEPINTVL", Scope.Tcp),
        (IPPROTO_TCP, 6, "TCP_KEEPCNT", Scope.Tcp),
        (IPPROTO_TCP, 7, "TCP_SYNCNT", Scope.Tcp),
        (IPPROTO_TCP, 8, "TCP_LINGER2", Scope.Tcp),
        (IPPROTO_TCP, 9, "TCP_DEFER_ACCEPT", Scope.Tcp),
        (IPPROTO_TCP, 10, "TCP_WINDOW_CLAMP", Scope.Tcp | Scope.NotConnected),
        (IPPROTO_TCP, 13, "TCP_CONGESTION", Scope.Tcp),
        (IPPROTO_TCP, 16, "TCP_THIN_LINEAR_TIMEOUTS", Scope.Tcp),
        (IPPROTO_TCP, 18, "TCP_USER_TIMEOUT", Scope.Tcp),
        (IPPROTO_TCP, 23, "TCP_FASTOPEN", Scope.Tcp),
        (IPPROTO_TCP, 25, "TCP_NOTSENT_LOWAT", Scope.Tcp),
        (IPPROTO_TCP, 27, "TCP_SAVE_SYN", Scope.Tcp),
        (IPPROTO_TCP, 30, "TCP_FASTOPEN_CONNECT", Scope.Tcp),
        (IPPROTO_TCP, 31, "TCP_ULP", Scope.Tcp),
        (IPPROTO_TCP, 34, "TCP_FASTOPEN_NO_COOKIE", Scope.Tcp),
        (IPPROTO_TCP, 36, "TCP_INQ", Scope.Tcp),
        (IPPROTO_TCP, 37, "TCP_TX_DELAY", Scope.Tcp),

        (SOL_RAW, 1, "ICMP_FILTER", Scope.Raw),
        (SOL_ICMPV6, 1, "ICMPV6_FILTER", Scope.Raw),
        (SOL_RAW, 7, "IPV6_CHECKSUM", Scope.Raw),
        (SOL_RAW, 36, "IPV6_HDRINCL", Scope.Raw),

        (IPPROTO_UDP, 1, "UDP_CORK", Scope.Udp),
        (IPPROTO_UDP, 100, "UDP_ENCAP", Scope.Udp),
        (IPPROTO_UDP, 101, "UDP_NO_CHECK6_TX", Scope.Udp),
        (IPPROTO_UDP, 102, "UDP_NO_CHECK6_RX", Scope.Udp),
        (IPPROTO_UDP, 103, "UDP_SEGMENT", Scope.Udp),
        (IPPROTO_UDP, 104, "UDP_GRO", Scope.Udp),
    ];

    /// <summary>
    /// The options, filter and shutdown state of descriptor <paramref name="fd"/> of
    /// <paramref name="pid"/> (a unix or internet socket), or null when all are as on a new socket.
    /// Refuses one that cannot be read, or that a new socket of the same kind does not take back.
    /// </summary>
    public static SocketOptionsRecord? Capture(int pid, int fd, UnixSocketInfo? unix)
    {
        var copy = ForeignDescriptor.Copy(pid, fd);
        var scratch = -1;
        try
        {
            var family = SocketOption.Get(copy, SOL_SOCKET, SO_DOMAIN);
            var type = SocketOption.Get(copy, SOL_SOCKET, SO_TYPE);
            var protocol = SocketOption.Get(copy, SOL_SOCKET, SO_PROTOCOL);
            scratch = socket(family, type | SOCK_CLOEXEC, protocol);
            if (scratch < 0)
                throw new UnsupportedStateException(pid,
                    $"descriptor {fd} is a socket (family {family}, type {type}) of a kind this machine cannot make again: {Marshal.GetPInvokeErrorMessage(ErrnoCheck.LastErrno)}");
            var connected = type == SOCK_STREAM && SocketOption.Get(copy, SOL_SOCKET, SO_ACCEPTCONN) != 1 && HasPeer(copy);
            var scope = Scope.Socket
                | (family is AF_INET or AF_INET6 ? Scope.Ip : 0) | (family == AF_INET6 ? Scope.Ipv6 : 0)
                | (family is AF_INET or AF_INET6 && protocol == IPPROTO_TCP && type != SOCK_RAW ? Scope.Tcp : 0)
                | (family is AF_INET or AF_INET6 && protocol == IPPROTO_UDP && type != SOCK_RAW ? Scope.Udp : 0)
                | (family is AF_INET or AF_INET6 && type == SOCK_RAW ? Scope.Raw : 0);
            var listening = SocketOption.Get(copy, SOL_SOCKET, SO_ACCEPTCONN) == 1;
            var locks = SocketOption.Get(copy, SOL_SOCKET, SO_BUF_LOCK);
            int shutdown;
            try
            {
                shutdown = unix?.Shutdown
                    ?? (family is AF_INET or AF_INET6 ? InetSocketDiag.Shutdowns(family, protocol, type == SOCK_RAW).GetValueOrDefault(Inode(copy)) : 0);
            }
            catch (NativeException e)
            {
                throw new UnsupportedStateException(pid, $"descriptor {fd}: the shutdown state of this socket cannot be read through sock_diag ({e.Message}), so it cannot be saved");
            }

            var values = new List<SocketOptionValue>();
            foreach (var (level, option, name, where) in Table)
            {
                if ((where & scope & (Scope.Socket | Scope.Ip | Scope.Ipv6 | Scope.Tcp | Scope.Udp | Scope.Raw)) == 0) continue;
                // An accepted TCP socket inherits multicast values from the SYN that TCP can neither use nor take.
                if (type == SOCK_STREAM && where.HasFlag(Scope.NotStream)) continue;
                if (connected && where.HasFlag(Scope.NotConnected)) continue;
                // A size the program did not set is the kernel's to tune; only a locked one is state.
                if (option == SO_RCVBUF && level == SOL_SOCKET && (locks < 0 || (locks & SOCK_RCVBUF_LOCK) == 0)) continue;
                if (option == SO_SNDBUF && level == SOL_SOCKET && (locks < 0 || (locks & SOCK_SNDBUF_LOCK) == 0)) continue;
                var mine = Read(copy, level, option);
                var fresh = Read(scratch, level, option);
                if (mine is null)
                {
                    if (fresh is null) continue;
                    throw new UnsupportedStateException(pid,
                        $"descriptor {fd}: socket option {name} cannot be read ({Marshal.GetPInvokeErrorMessage(ErrnoCheck.LastErrno)}), so it cannot be saved");
                }
                if (fresh is not null && mine.AsSpan().SequenceEqual(fresh)) continue;
                // Outside a listener, the MSS and window clamp read back what an earlier connection
                // left (the socket closed since): kept only when they are a value a program can set.
                if (where.HasFlag(Scope.NotConnected) && !listening && !Takes(scratch, level, option, mine)) continue;
                values.Add(new SocketOptionValue { Name = name, Level = level, Option = option, Value = mine });
            }
            var filter = ReadFilter(pid, fd, copy);

            if (values.Count == 0 && filter is null && shutdown == 0) return null;
            var record = new SocketOptionsRecord { Values = values, Filter = filter, Shutdown = shutdown };
            // Tried now on the scratch socket: what it does not take back, the restart could not either.
            try
            {
                Apply(scratch, record, fd, beforeBind: true);
                Apply(scratch, record, fd, beforeBind: false);
            }
            catch (RestartException e)
            {
                throw new UnsupportedStateException(pid, e.Message.TrimEnd('.') + ", so it cannot be restored");
            }
            foreach (var v in values)
                if (Read(scratch, v.Level, v.Option) is var back && (back is null || !back.AsSpan().SequenceEqual(v.Value)))
                    throw new UnsupportedStateException(pid,
                        $"descriptor {fd}: socket option {v.Name} is {Show(v.Value)}, which a new socket does not take back (it reads {(back is null ? "nothing" : Show(back))}), so it cannot be restored");
            return record;
        }
        finally
        {
            close(copy);
            if (scratch >= 0) close(scratch);
        }
    }

    /// <summary>Whether a socket takes this value and reads it back.</summary>
    private static bool Takes(int socket, int level, int option, byte[] value)
    {
        fixed (byte* p = value)
            if (setsockopt(socket, level, option, p, value.Length) != 0) return false;
        return Read(socket, level, option) is { } back && back.AsSpan().SequenceEqual(value);
    }

    private static bool HasPeer(int fd)
    {
        var buffer = stackalloc byte[128];
        var length = 128;
        return getpeername(fd, buffer, &length) == 0;
    }

    private static byte[]? Read(int fd, int level, int option)
    {
        var buffer = stackalloc byte[ValueSize];
        new Span<byte>(buffer, ValueSize).Clear();
        var length = ValueSize;
        return getsockopt(fd, level, option, buffer, &length) == 0 ? new ReadOnlySpan<byte>(buffer, Math.Clamp(length, 0, ValueSize)).ToArray() : null;
    }

    /// <summary>The classic BPF program attached to the socket, as it was given (SO_GET_FILTER); null without one.</summary>
    private static byte[]? ReadFilter(int pid, int fd, int socket)
    {
        var count = 0;
        if (getsockopt(socket, SOL_SOCKET, SO_GET_FILTER, null, &count) != 0)
        {
            var errno = ErrnoCheck.LastErrno;
            if (errno == 13) // EACCES: an eBPF program, which has no classic form to give back
                throw new UnsupportedStateException(pid, $"descriptor {fd} has an eBPF socket filter (SO_ATTACH_BPF), which this version cannot save");
            return null;
        }
        if (count == 0) return null;
        var blocks = new byte[count * 8];
        fixed (byte* b = blocks)
        {
            var got = count;
            if (getsockopt(socket, SOL_SOCKET, SO_GET_FILTER, b, &got) != 0)
                throw new UnsupportedStateException(pid,
                    $"descriptor {fd}: its socket filter cannot be read ({Marshal.GetPInvokeErrorMessage(ErrnoCheck.LastErrno)}), so it cannot be saved");
        }
        return blocks;
    }

    /// <summary>
    /// Sets the saved filter and options on <paramref name="socket"/>: with <paramref name="beforeBind"/>
    /// those that must come before bind() (addresses that are not local, a device, reuse), otherwise the
    /// rest, the filter first so that SO_LOCK_FILTER would find it.
    /// </summary>
    public static void Apply(int socket, SocketOptionsRecord? record, int forFd, bool beforeBind)
    {
        if (record is null) return;
        if (!beforeBind && record.Filter is { Length: > 0 } filter)
        {
            fixed (byte* f = filter)
            {
                // struct sock_fprog: unsigned short len, then (padded) the pointer to the blocks.
                var program = stackalloc byte[16];
                new Span<byte>(program, 16).Clear();
                *(ushort*)program = (ushort)(filter.Length / 8);
                *(byte**)(program + 8) = f;
                if (setsockopt(socket, SOL_SOCKET, SO_ATTACH_FILTER, program, 16) != 0)
                    throw Failed(forFd, "its socket filter");
            }
        }
        foreach (var v in record.Values)
        {
            var early = Table.FirstOrDefault(t => t.Level == v.Level && t.Option == v.Option).Scope.HasFlag(Scope.BeforeBind);
            if (early != beforeBind) continue;
            var option = v.Option;
            var value = v.Value;
            if (v.Level == SOL_SOCKET && v.Option is SO_RCVBUF or SO_SNDBUF)
            {
                // getsockopt shows twice what was asked (the kernel's bookkeeping share); FORCE passes the limits, as the original may have.
                option = v.Option == SO_RCVBUF ? SO_RCVBUFFORCE : SO_SNDBUFFORCE;
                value = BitConverter.GetBytes(BitConverter.ToInt32(v.Value) / 2);
            }
            fixed (byte* p = value)
                if (setsockopt(socket, v.Level, option, p, value.Length) != 0)
                    throw Failed(forFd, $"socket option {v.Name} ({Show(v.Value)})");
        }
    }

    /// <summary>
    /// Both ends of a socket pair just made (and refilled): each gets its own saved options, then its
    /// shutdown state, which for a stream reaches the other end too, as it did.
    /// </summary>
    public static void ApplyPair(Image.ContextImage image, FileDescriptorRecord d, int mine, int peer)
    {
        var other = image.Processes.SelectMany(p => p.Files.Descriptors).FirstOrDefault(x => x.Inode == d.PeerInode);
        Apply(mine, d.SocketOptions, d.Fd, beforeBind: true);
        Apply(mine, d.SocketOptions, d.Fd, beforeBind: false);
        if (other is not null)
        {
            Apply(peer, other.SocketOptions, other.Fd, beforeBind: true);
            Apply(peer, other.SocketOptions, other.Fd, beforeBind: false);
        }
        Shutdown(mine, d.SocketOptions, d.Fd);
        if (other is not null) Shutdown(peer, other.SocketOptions, other.Fd);
    }

    /// <summary>The directions shut down at the checkpoint, shut again (after any queued data was put back).</summary>
    public static void Shutdown(int socket, SocketOptionsRecord? record, int forFd)
    {
        if (record is null || record.Shutdown == 0) return;
        var how = record.Shutdown switch { 1 => SHUT_RD, 2 => SHUT_WR, _ => SHUT_RDWR };
        // An unconnected datagram socket is marked all the same, but the call says ENOTCONN.
        if (shutdown(socket, how) != 0 && ErrnoCheck.LastErrno != ENOTCONN)
            throw Failed(forFd, "its shutdown state");
    }

    private static RestartException Failed(int forFd, string what) =>
        new(RestartFailure.Failed, $"descriptor {forFd}: cannot set {what} again: {Marshal.GetPInvokeErrorMessage(ErrnoCheck.LastErrno)}.");

    /// <summary>
    /// The restart's read-back: each saved option, the filter and the shutdown state of every socket
    /// of the rebuilt process <paramref name="pid"/>, from its own descriptors.
    /// </summary>
    public static void Verify(int pid, FileTableRecord files)
    {
        Dictionary<ulong, UnixSocketInfo>? unix = null;
        var inet = new Dictionary<(int, int, int), Dictionary<ulong, int>>();
        foreach (var d in files.Descriptors)
        {
            if (d.SocketOptions is not { } saved) continue;
            var copy = ForeignDescriptor.Copy(pid, d.Fd);
            try
            {
                foreach (var v in saved.Values)
                {
                    var back = Read(copy, v.Level, v.Option);
                    if (back is null || !back.AsSpan().SequenceEqual(v.Value))
                        throw RestartCheck.Mismatch(pid, $"descriptor {d.Fd}: socket option {v.Name}", Show(v.Value), back is null ? "unreadable" : Show(back));
                }
                var filter = ReadFilterBack(copy);
                RestartCheck.Expect(pid, $"descriptor {d.Fd}: socket filter", Convert.ToHexString(saved.Filter ?? []), Convert.ToHexString(filter));
                int shut;
                if (d.Kind == FileDescriptorKind.InetSocket && d.Inet is { } s)
                {
                    var key = (s.Family, s.Protocol, s.Type);
                    if (!inet.TryGetValue(key, out var table)) inet[key] = table = InetSocketDiag.Shutdowns(s.Family, s.Protocol, s.Type == SOCK_RAW);
                    shut = table.GetValueOrDefault(Inode(copy));
                }
                else
                {
                    unix ??= UnixSocketDiag.Dump();
                    shut = unix.TryGetValue(Inode(copy), out var u) ? u.Shutdown : 0;
                }
                RestartCheck.Expect(pid, $"descriptor {d.Fd}: socket shutdown state", saved.Shutdown, shut);
            }
            finally
            {
                close(copy);
            }
        }
    }

    private static byte[] ReadFilterBack(int socket)
    {
        var count = 0;
        if (getsockopt(socket, SOL_SOCKET, SO_GET_FILTER, null, &count) != 0 || count == 0) return [];
        var blocks = new byte[count * 8];
        fixed (byte* b = blocks)
            return getsockopt(socket, SOL_SOCKET, SO_GET_FILTER, b, &count) == 0 ? blocks : [];
    }

    private static ulong Inode(int fd)
    {
        Stat st;
        return fstat(fd, &st) == 0 ? st.Ino : 0;
    }

    private static string Show(byte[] value) =>
        value.Length == 4 ? BitConverter.ToInt32(value).ToString(System.Globalization.CultureInfo.InvariantCulture)
        : value.Length == 0 ? "empty"
        : value.Any(b => b >= 32 && b < 127) && value.All(b => b == 0 || (b >= 32 && b < 127)) ? $"\"{System.Text.Encoding.ASCII.GetString(value).TrimEnd('\0')}\""
        : "0x" + Convert.ToHexString(value);
}
