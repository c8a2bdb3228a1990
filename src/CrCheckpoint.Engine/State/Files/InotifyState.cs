using System.Globalization;
using System.Text.RegularExpressions;
using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Proc;
using CrCheckpoint.Engine.Restart;
using Microsoft.Win32.SafeHandles;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Files;

public static partial class InotifyState
{
    private const int IN_CLOEXEC = 0x80000, IN_NONBLOCK = 0x800;
    private const uint IN_DONT_FOLLOW = 0x02000000;

    /// <summary>
    /// The watches from fdinfo. fdinfo names each watched file by a file handle, which
    /// open_by_handle_at turns back into a path (on a descriptor of any mount of the same file system).
    /// </summary>
    public static unsafe InotifyRecord Capture(int pid, int fd, FdInfo info)
    {
        var watches = new List<InotifyWatchRecord>();
        var mounts = MountLine.Read(pid);
        foreach (var line in info.All("inotify wd"))
        {
            var m = WatchPattern().Match(line);
            if (!m.Success) throw new UnsupportedStateException(pid, $"descriptor {fd} is an inotify whose watch '{line}' cannot be read");
            var wd = int.Parse(m.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            var device = uint.Parse(m.Groups[2].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            var path = PathOf(pid, mounts, device, int.Parse(m.Groups[4].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                Convert.FromHexString(m.Groups[5].Value))
                ?? throw new UnsupportedStateException(pid, $"descriptor {fd} is an inotify watching a file (watch {wd}) whose path cannot be found any more");
            watches.Add(new InotifyWatchRecord { Wd = wd, Path = path, Mask = uint.Parse(m.Groups[3].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture) });
        }
        var copy = ForeignDescriptor.Copy(pid, fd);
        int pending = 0;
        try { ioctl(copy, FIONREAD, &pending); }
        finally { close(copy); }
        return new InotifyRecord { Watches = watches.OrderBy(w => w.Wd).ToList(), PendingBytes = pending };
    }

    [GeneratedRegex(@"^([0-9a-f]+)\s+ino:[0-9a-f]+\s+sdev:([0-9a-f]+)\s+mask:([0-9a-f]+)\s+ignored_mask:[0-9a-f]+\s+fhandle-bytes:[0-9a-f]+\s+fhandle-type:([0-9a-f]+)\s+f_handle:([0-9a-f]+)")]
    private static partial Regex WatchPattern();

    /// <summary>The path of a file handle, through a mount of its file system as the process sees it (the kernel's dev_t: major in the bits above 20).</summary>
    private static unsafe string? PathOf(int pid, List<MountLine> mounts, uint device, int handleType, byte[] handle)
    {
        var wanted = $"{device >> 20}:{device & 0xfffff}";
        var mount = mounts.Where(m => m.Device == wanted).OrderBy(m => m.Root == "/" ? 0 : 1).FirstOrDefault();
        if (mount is null) return null;
        // open_by_handle_at refuses an O_PATH descriptor as its mount.
        var mountFd = open($"/proc/{pid}/root{mount.MountPoint}", O_RDONLY | O_CLOEXEC | O_DIRECTORY, 0);
        if (mountFd == -1) return null;
        try
        {
            var fileHandle = new byte[8 + handle.Length];
            BitConverter.TryWriteBytes(fileHandle, handle.Length);
            BitConverter.TryWriteBytes(fileHandle.AsSpan(4), handleType);
            handle.CopyTo(fileHandle, 8);
            long opened;
            fixed (byte* h = fileHandle)
                opened = syscall(Syscalls.open_by_handle_at, mountFd, (long)h, O_PATH | O_CLOEXEC);
            if (opened < 0) return null;
            try
            {
                var path = ProcFds.ReadLink($"/proc/self/fd/{opened}");
                return path is null || path.EndsWith(" (deleted)", StringComparison.Ordinal) ? null : path;
            }
            finally { close((int)opened); }
        }
        finally { close(mountFd); }
    }

    /// <summary>
    /// A new inotify with the same watches under the same watch descriptors. The kernel hands out
    /// descriptors in increasing order, so a number below the one wanted is given back and the
    /// watch added again until the number matches; the IN_IGNORED events that leaves are read away.
    /// </summary>
    public static SafeFileHandle Create(InotifyRecord r, int openFlags, int forFd, PathRelocator relocate, MessageLog log)
    {
        var fd = (int)ErrnoCheck.Check(syscall(Syscalls.inotify_init1, IN_CLOEXEC | IN_NONBLOCK), "inotify_init1");
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            foreach (var w in r.Watches)
            {
                var path = relocate.Map(w.Path);
                while (true)
                {
                    var wd = AddWatch(fd, path, w.Mask | IN_DONT_FOLLOW);
                    if (wd == -1)
                        throw new RestartException(RestartFailure.FileMissing,
                            $"cannot watch {path} again (inotify descriptor {forFd}, watch {w.Wd}): {Marshal.GetPInvokeErrorMessage(ErrnoCheck.LastErrno)}. Put it back or use -Relocate.", path);
                    if (wd == w.Wd) break;
                    if (wd > w.Wd)
                        throw new RestartException(RestartFailure.Failed,
                            $"{path} came back as inotify watch {wd}, not {w.Wd} (inotify descriptor {forFd}): two watches of the checkpoint are on one file now.", path);
                    syscall(Syscalls.inotify_rm_watch, fd, wd);
                }
            }
            Drain(fd);
            fcntl(fd, 4 /* F_SETFL */, openFlags & IN_NONBLOCK);
            if (r.PendingBytes > 0)
                log.Add($"{r.PendingBytes} bytes of inotify events waiting on descriptor {forFd} at the checkpoint are not carried over");
            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static unsafe long AddWatch(int fd, string path, uint mask)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes)
            return syscall(Syscalls.inotify_add_watch, fd, (long)p, mask);
    }

    private static unsafe void Drain(int fd)
    {
        var buffer = stackalloc byte[4096];
        while (read(fd, buffer, 4096) > 0) { }
    }
}
