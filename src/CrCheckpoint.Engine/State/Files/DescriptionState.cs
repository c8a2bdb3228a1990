using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Proc;
using CrCheckpoint.Engine.Restart;
using CrCheckpoint.Engine.Tracing;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>
/// What an open file description holds beyond its file, for every kind of descriptor: status
/// flags, locks (POSIX, OFD, flock), a lease, and its owner (F_SETOWN_EX, F_SETSIG). Captured
/// from fdinfo and from the engine's own copy of the descriptor, given back once per description
/// at restart, and read back from fdinfo before the processes run.
/// </summary>
public static unsafe class DescriptionState
{
    /// <summary>The flags fdinfo shows that the restart must give back; O_LARGEFILE and O_DIRECTORY the kernel adds by itself.</summary>
    private const int CheckedFlags = O_ACCMODE | SettableStatusFlags | O_DSYNC | 0x101000 /* O_SYNC */ | O_PATH;

    /// <summary>The kinds whose file a restart reopens, and so can lock again.</summary>
    private static bool Lockable(FileDescriptorKind kind) => kind is FileDescriptorKind.RegularFile or FileDescriptorKind.UnlinkedFile
        or FileDescriptorKind.Directory or FileDescriptorKind.Memfd or FileDescriptorKind.Fifo;

    /// <summary>Fills the locks, lease and owner of each descriptor of <paramref name="pid"/>; refuses what cannot come back.</summary>
    public static void Capture(int pid, IReadOnlyList<FileDescriptorRecord> descriptors, IReadOnlyDictionary<int, OpenDescriptor> seen)
    {
        foreach (var d in descriptors)
            if (seen.TryGetValue(d.Fd, out var open) && open.Locks.Count > 0)
                CaptureLocks(pid, d, open.Locks);
        CaptureOwners(pid, descriptors);
    }

    private static void CaptureLocks(int pid, FileDescriptorRecord d, IReadOnlyList<FileLockLine> lines)
    {
        var locks = new List<FileLockRecord>();
        foreach (var l in lines)
        {
            string Where() => $"descriptor {d.Fd} ({d.Path})";
            if (l.Kind is "LEASE")
            {
                if (l.Mode != "ACTIVE")
                    throw new UnsupportedStateException(pid, $"{Where()} holds a lease that is being broken; checkpoint again once the lease break is over");
                d.Lease = TypeOf(l);
                continue;
            }
            var kind = KindOf(l);
            if (kind is null || l.Mode != "ADVISORY" || l.Type is not ("READ" or "WRITE"))
                throw new UnsupportedStateException(pid, $"{Where()} holds a {l.Kind} {l.Mode} {l.Type} lock, which this version cannot take again at restart");
            if (!Lockable(d.Kind))
                throw new UnsupportedStateException(pid, $"{Where()} is a {d.Kind} holding a {kind} lock; the restart makes such a file anew and cannot lock it again");
            if (kind == "posix" && l.Pid != pid)
                throw new UnsupportedStateException(pid, $"{Where()} shows a POSIX lock of process {l.Pid}, which shares this process's file table; such a lock cannot be given back");
            locks.Add(Record(l));
        }
        if (locks.Count > 0) d.Locks = locks;
    }

    /// <summary>F_GETOWN_EX and F_GETSIG on the engine's own copy of each descriptor: asking changes nothing.</summary>
    private static void CaptureOwners(int pid, IReadOnlyList<FileDescriptorRecord> descriptors)
    {
        if (descriptors.Count == 0) return;
        var pidfd = (int)ErrnoCheck.Check(syscall(Syscalls.pidfd_open, pid, 0), $"pidfd_open({pid})");
        try
        {
            // An O_PATH descriptor has no owner: fcntl refuses to ask.
            foreach (var d in descriptors.Where(d => (d.Flags & O_PATH) == 0))
            {
                var local = (int)syscall(Syscalls.pidfd_getfd, pidfd, d.Fd, 0);
                if (local < 0) throw new NativeException($"pidfd_getfd({pid}, {d.Fd})", ErrnoCheck.LastErrno);
                try
                {
                    FileOwnerEx owner;
                    ErrnoCheck.Check(fcntl(local, F_GETOWN_EX, &owner), $"F_GETOWN_EX of descriptor {d.Fd}");
                    var signal = ErrnoCheck.Check(fcntl(local, F_GETSIG, 0), $"F_GETSIG of descriptor {d.Fd}");
                    if (owner.Pid != 0 || signal != 0)
                        d.Owner = new FileOwnerRecord { Type = owner.Type, Pid = owner.Pid, Signal = signal };
                }
                finally
                {
                    close(local);
                }
            }
        }
        finally
        {
            close(pidfd);
        }
    }

    /// <summary>
    /// Gives one restored description, open in the engine as <paramref name="fd"/>, its owner, status
    /// flags and its OFD locks; the rest is <see cref="RestoreInProcess"/>'s.
    /// </summary>
    public static void Apply(int fd, FileDescriptorRecord d, Func<FileOwnerRecord, int> ownerPid)
    {
        if (d.Owner is { } owner)
        {
            var want = new FileOwnerEx { Type = owner.Type, Pid = owner.Pid == 0 ? 0 : ownerPid(owner) };
            ErrnoCheck.Check(fcntl(fd, F_SETOWN_EX, &want), $"F_SETOWN_EX for descriptor {d.Fd}");
            ErrnoCheck.Check(fcntl(fd, F_SETSIG, owner.Signal), $"F_SETSIG for descriptor {d.Fd}");
        }
        var flags = ErrnoCheck.Check(fcntl(fd, F_GETFL, 0), $"F_GETFL for descriptor {d.Fd}");
        // O_ASYNC waits for the process itself (RestoreInProcess): it registers the descriptor number signals report.
        var wanted = (flags & ~SettableStatusFlags) | (d.Flags & SettableStatusFlags & ~O_ASYNC);
        if (wanted != flags) ErrnoCheck.Check(fcntl(fd, F_SETFL, wanted), $"F_SETFL for descriptor {d.Fd}");
        foreach (var l in d.Locks ?? [])
        {
            if (l.Kind == "ofd")
            {
                var args = Args(l);
                if (fcntl(fd, F_OFD_SETLK, &args) != 0) throw Locked(d, l, ErrnoCheck.LastErrno);
            }
        }
    }

    /// <summary>
    /// What the restarted process must do itself, on its own descriptor numbers, once they are all
    /// in place: POSIX locks belong to the process, flock locks show who took them; O_ASYNC and leases register the descriptor
    /// number that SIGIO and lease breaks report in si_fd (the first holder's, as at the checkpoint).
    /// Leases come last, since the restart's own opens of a file would break them.
    /// </summary>
    public static void RestoreInProcess(Tracee tracee, IReadOnlyList<FileDescriptorRecord> descriptors, Func<FileDescriptorRecord, bool> firstHolder)
    {
        foreach (var d in descriptors)
            foreach (var l in d.Locks ?? [])
            {
                long r;
                if (l.Kind == "posix")
                {
                    using var scratch = tracee.Scratch();
                    r = tracee.Syscall(Syscalls.fcntl, d.Fd, F_SETLK, scratch.Struct(Args(l)));
                }
                // The description owns a flock lock, but fdinfo names the process that took it.
                else if (l.Kind == "flock" && firstHolder(d))
                    r = tracee.Syscall(Syscalls.flock, d.Fd, (l.Type == "write" ? LOCK_EX : LOCK_SH) | LOCK_NB);
                else continue;
                if (RemoteResult.Failed(r, out var errno)) throw Locked(d, l, (int)errno);
            }
        foreach (var d in descriptors.Where(d => (d.Flags & O_ASYNC) != 0 && firstHolder(d)))
            tracee.CheckedSyscall($"fcntl(F_SETFL, O_ASYNC) of descriptor {d.Fd}", Syscalls.fcntl, d.Fd, F_SETFL, d.Flags & SettableStatusFlags);
        foreach (var d in descriptors.Where(d => d.Lease is not null && firstHolder(d)))
        {
            var r = tracee.Syscall(Syscalls.fcntl, d.Fd, F_SETLEASE, d.Lease == "write" ? F_WRLCK : F_RDLCK);
            if (RemoteResult.Failed(r, out var errno))
                throw new RestartException(RestartFailure.FileInUse,
                    $"cannot take the {d.Lease} lease of descriptor {d.Fd} ({d.Path}) again: {Marshal.GetPInvokeErrorMessage((int)errno)}; another process has the file open in a way the lease forbids.", d.Path);
        }
    }

    /// <summary>The restart's self-check: flags, close-on-exec, offset, locks and lease of each descriptor, from fdinfo.</summary>
    public static void Verify(int pid, IEnumerable<FileDescriptorRecord> descriptors, Func<FileDescriptorRecord, bool> replaced)
    {
        foreach (var d in descriptors)
        {
            if (replaced(d)) continue;
            var open = FdInfo.TryRead(pid, d.Fd)
                ?? throw RestartCheck.Mismatch(pid, $"descriptor {d.Fd} ({d.Path})", "open", "closed");
            var what = $"descriptor {d.Fd} ({d.Path})";
            RestartCheck.Expect(pid, $"the flags of {what}", Octal(d.Flags & CheckedFlags), Octal(open.Flags & CheckedFlags));
            RestartCheck.Expect(pid, $"close-on-exec of {what}", d.CloseOnExec, (open.Flags & O_CLOEXEC) != 0);
            if (d.Kind is FileDescriptorKind.RegularFile or FileDescriptorKind.UnlinkedFile or FileDescriptorKind.Memfd)
                RestartCheck.Expect(pid, $"the offset of {what}", d.Position, open.Position);
            RestartCheck.Expect(pid, $"the locks of {what}", Describe(d.Locks, d.Lease), Describe(Saved(open.Locks), Lease(open.Locks)));
        }
    }

    /// <summary>A lock as the context holds it; the same reading at checkpoint and in the restart's self-check.</summary>
    private static FileLockRecord Record(FileLockLine l) => new()
    {
        Kind = KindOf(l) ?? l.Kind,
        Type = TypeOf(l),
        Start = l.Start,
        Length = l.End < 0 ? 0 : l.End - l.Start + 1,
    };

    private static string? KindOf(FileLockLine l) => l.Kind switch { "POSIX" => "posix", "OFDLCK" => "ofd", "FLOCK" => "flock", _ => null };

    private static string TypeOf(FileLockLine l) => l.Type == "WRITE" ? "write" : "read";

    private static List<FileLockRecord> Saved(IReadOnlyList<FileLockLine> lines) =>
        lines.Where(l => l.Kind != "LEASE").Select(Record).ToList();

    private static string? Lease(IReadOnlyList<FileLockLine> lines) =>
        lines.FirstOrDefault(l => l.Kind == "LEASE") is { } l ? TypeOf(l) : null;

    private static string Describe(List<FileLockRecord>? locks, string? lease)
    {
        var all = (locks ?? []).Select(l => $"{l.Kind} {l.Type} {l.Start}+{(l.Length == 0 ? "EOF" : l.Length.ToString())}")
            .Order(StringComparer.Ordinal).ToList();
        if (lease is not null) all.Add($"{lease} lease");
        return all.Count == 0 ? "none" : string.Join(", ", all);
    }

    private static string Octal(int flags) => "0" + Convert.ToString(flags, 8);

    private static FileLockArgs Args(FileLockRecord l) => new()
    {
        Type = l.Type == "write" ? F_WRLCK : F_RDLCK,
        Whence = SEEK_SET,
        Start = l.Start,
        Length = l.Length,
    };

    private static RestartException Locked(FileDescriptorRecord d, FileLockRecord l, int errno) =>
        new(errno is (int)Errno.EAGAIN or (int)Errno.EACCES ? RestartFailure.FileInUse : RestartFailure.Failed,
            $"cannot take the {l.Kind} {l.Type} lock of descriptor {d.Fd} ({d.Path}) again: " +
            (errno is (int)Errno.EAGAIN or (int)Errno.EACCES
                ? "another process holds a conflicting lock on the file now; stop it or wait until it lets go."
                : Marshal.GetPInvokeErrorMessage(errno) + "."), d.Path);
}
