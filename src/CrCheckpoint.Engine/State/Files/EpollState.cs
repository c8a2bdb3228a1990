using System.Globalization;
using System.Text.RegularExpressions;
using CrCheckpoint.Engine.Image;
using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Proc;
using CrCheckpoint.Engine.Tracing;
using Microsoft.Win32.SafeHandles;

namespace CrCheckpoint.Engine.State.Files;

public static partial class EpollState
{
    private const int EPOLL_CLOEXEC = 0x80000, EPOLL_CTL_ADD = 1;

    /// <summary>
    /// The watch list from fdinfo. A watch stays while its file lives, even after the process
    /// closed the descriptor it was added with; such a watch names no descriptor of the process any
    /// more (or another file under that number), and cannot be added again: it is refused.
    /// </summary>
    public static EpollRecord Capture(int pid, int epollFd, FdInfo info)
    {
        var watches = new List<EpollWatchRecord>();
        foreach (var line in info.All("tfd"))
        {
            var m = WatchPattern().Match(line);
            if (!m.Success) throw new UnsupportedStateException(pid, $"descriptor {epollFd} is an epoll whose watch '{line}' cannot be read");
            var fd = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
            var inode = ulong.Parse(m.Groups[4].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            if (ProcFds.ReadOne(pid, fd) is not { Stat: { } st } || st.Ino != inode)
                throw new UnsupportedStateException(pid,
                    $"descriptor {epollFd} is an epoll that still watches a file the process has closed descriptor {fd} of; this version cannot checkpoint such a watch");
            watches.Add(new EpollWatchRecord
            {
                Fd = fd,
                Events = uint.Parse(m.Groups[2].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                Data = ulong.Parse(m.Groups[3].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture),
            });
        }
        return new EpollRecord { Watches = watches };
    }

    [GeneratedRegex(@"^(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)\s+pos:\s*\d+\s+ino:\s*([0-9a-f]+)")]
    private static partial Regex WatchPattern();

    /// <summary>An empty epoll; its watches are added by the process itself once its descriptors are in place (see <see cref="AddWatches"/>).</summary>
    public static SafeFileHandle Create() =>
        new((nint)ErrnoCheck.Check(Interop.syscall(Syscalls.epoll_create1, EPOLL_CLOEXEC), "epoll_create1"), ownsHandle: true);

    /// <summary>
    /// Adds every watch of the process's epolls, in one batch run by the process: a watch is keyed
    /// by the descriptor number it was added with, in the adder's own table, so the engine cannot
    /// add it on the process's behalf. An epoll shared with another process (inherited across a
    /// fork) is filled once, by the first of them. A watched file that is ready queues its event
    /// again, as it was queued before.
    /// </summary>
    public static void AddWatches(Tracee tracee, ProcessImage process, HashSet<string> filled)
    {
        const int EventSize = 12, PerTrip = 500;
        var calls = new List<(int EpollFd, EpollWatchRecord Watch)>();
        foreach (var d in process.Files.Descriptors.Where(d => d.Kind == FileDescriptorKind.Epoll && d.Epoll is not null))
        {
            if (!filled.Add(d.Description ?? $"{process.Pid}:{d.Fd}")) continue;
            calls.AddRange(d.Epoll!.Watches.Select(w => (d.Fd, w)));
        }
        for (var first = 0; first < calls.Count; first += PerTrip)
        {
            var trip = calls.Skip(first).Take(PerTrip).ToList();
            var buffer = new byte[trip.Count * EventSize];
            for (var i = 0; i < trip.Count; i++)
            {
                // struct epoll_event is packed on x86-64: events (4 bytes), data (8).
                BitConverter.TryWriteBytes(buffer.AsSpan(i * EventSize, 4), trip[i].Watch.Events);
                BitConverter.TryWriteBytes(buffer.AsSpan(i * EventSize + 4, 8), trip[i].Watch.Data);
            }
            var batch = new RemoteBatch();
            for (var i = 0; i < trip.Count; i++)
                batch.Add($"epoll_ctl(ADD) of descriptor {trip[i].Watch.Fd} to epoll {trip[i].EpollFd}",
                    new RemoteCall(Syscalls.epoll_ctl, trip[i].EpollFd, EPOLL_CTL_ADD, trip[i].Watch.Fd, RemoteArg.Bytes(buffer, i * EventSize)));
            tracee.Run(batch);
        }
    }
}
