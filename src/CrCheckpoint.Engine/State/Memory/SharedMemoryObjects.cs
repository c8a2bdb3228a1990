using CrCheckpoint.Engine.Image;
using CrCheckpoint.Engine.Native;
using Microsoft.Win32.SafeHandles;
using CrCheckpoint.Engine.Restart;
using CrCheckpoint.Engine.State.Files;

namespace CrCheckpoint.Engine.State.Memory;

/// <summary>
/// Shared memory objects (memfd, MAP_SHARED|MAP_ANONYMOUS, System V segments) come back as one
/// memfd each, made and filled by the engine; every area and descriptor that used the object then
/// uses that same memfd, so memory mapped twice (such as .NET's W^X double mapping) stays one.
/// The object gets its mode, owner and seals back once filled and before anything maps it: a
/// F_SEAL_WRITE cannot be added while a writable shared mapping exists, and once added it keeps
/// read-only shared mappings from ever being made writable, as it did in the original.
/// </summary>
public sealed class SharedMemoryObjects : IDisposable
{
    private readonly Dictionary<string, SafeFileHandle> _objects = new();

    public static SharedMemoryObjects Create(ContextImage image)
    {
        var objects = new SharedMemoryObjects();
        try
        {
            var buffer = GC.AllocateUninitializedArray<byte>(1 << 20);
            foreach (var content in image.FileContents.Where(f => f.Record.Reason == "shmem"))
            {
                using var context = File.OpenHandle(content.Source, FileMode.Open, FileAccess.Read);
                objects._objects[content.Record.Key] = objects.Fill(context, content, buffer);
            }
            foreach (var key in LiveUnlinkedFiles(image))
                if (!objects._objects.ContainsKey(key)) objects._objects[key] = Recreate(image, key);
            return objects;
        }
        catch
        {
            objects.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Unlinked files whose data someone can still change and someone else would see: open in a
    /// descriptor, or mapped shared. Each comes back as one file, recreated once, that every
    /// descriptor reopens and every area maps, so writes through one are seen through the others.
    /// An unlinked file that is only mapped privately is mapped from the context file itself.
    /// </summary>
    private static HashSet<string> LiveUnlinkedFiles(ContextImage image)
    {
        var unlinked = image.FileContents.Where(f => f.Record.Reason == "unlinked").Select(f => f.Record.Key).ToHashSet();
        return image.Processes.SelectMany(p => p.Files.Descriptors)
            .Where(d => d.Kind == FileDescriptorKind.UnlinkedFile).Select(d => d.SavedFileKey)
            .Concat(image.Processes.SelectMany(p => p.Map.Areas).Where(a => a.Kind == MemoryAreaKind.SharedFile).Select(a => a.SavedFileKey))
            .OfType<string>().Where(unlinked.Contains).ToHashSet();
    }

    private static SafeFileHandle Recreate(ContextImage image, string key)
    {
        var content = image.FileContents.First(f => f.Record.Key == key);
        var path = new ContextFiles(image).Recreate(key, StripDeleted(content.Record.Path));
        try
        {
            var fd = Interop.open(path, Interop.O_RDWR | Interop.O_CLOEXEC, 0);
            if (fd == -1) fd = Interop.open(path, Interop.O_RDONLY | Interop.O_CLOEXEC, 0);
            if (fd == -1)
                throw new RestartException(RestartFailure.FileMissing,
                    $"cannot open the recreated unlinked file {path}: {Marshal.GetPInvokeErrorMessage(ErrnoCheck.LastErrno)}.", path);
            return new SafeFileHandle(fd, ownsHandle: true);
        }
        finally { File.Delete(path); }
    }

    private static string StripDeleted(string path) =>
        path.EndsWith(" (deleted)", StringComparison.Ordinal) ? path[..^10] : path;

    private const int F_ADD_SEALS = 1033, F_GET_SEALS = 1034;
    private const uint MFD_ALLOW_SEALING = 2;

    /// <summary>The seals, owner and group of a shared memory object, read through any descriptor of it.</summary>
    public static unsafe (int? Seals, uint? Owner, uint? Group) Capture(SafeFileHandle handle)
    {
        var fd = (int)handle.DangerousGetHandle();
        var seals = Interop.fcntl(fd, F_GET_SEALS, 0);
        Stat st;
        if (Interop.fstat(fd, &st) != 0) return (seals >= 0 ? seals : null, null, null);
        return (seals >= 0 ? seals : null, st.Uid, st.Gid);
    }

    private SafeFileHandle Fill(SafeFileHandle context, FileContentImage content, byte[] buffer)
    {
        var name = NameOf(content.Record.Path);
        var namePtr = Marshal.StringToCoTaskMemUTF8(name);
        int fd;
        var sealable = content.Record.Seals is not null ? MFD_ALLOW_SEALING : 0;
        try { fd = (int)ErrnoCheck.Check(Interop.syscall(Syscalls.memfd_create, namePtr, Interop.MFD_CLOEXEC | sealable), "memfd_create"); }
        finally { Marshal.FreeCoTaskMem(namePtr); }
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        ErrnoCheck.Check(Interop.ftruncate(fd, content.Record.Identity.Size), "ftruncate of a shared memory object");
        var runs = content.Record.Runs ?? [[0, content.Record.Identity.Size]];
        var source = content.DataOffset;
        foreach (var run in runs)
        {
            for (long done = 0; done < run[1];)
            {
                var n = RandomAccess.Read(context, buffer.AsSpan(0, (int)Math.Min(buffer.Length, run[1] - done)), source);
                if (n == 0) throw new EndOfStreamException($"the context file ends inside the saved shared memory {content.Record.Path}");
                RandomAccess.Write(handle, buffer.AsSpan(0, n), run[0] + done);
                done += n;
                source += n;
            }
        }
        var record = content.Record;
        if (record.Seals is { } seals)
        {
            ErrnoCheck.Check(Interop.fchmod(fd, (int)(record.Identity.Mode & 0xfff)), "fchmod of a shared memory object");
            if (record.Owner is { } owner && record.Group is { } group)
                ErrnoCheck.Check(Interop.fchownat(fd, "", owner, group, AT_EMPTY_PATH), "fchown of a shared memory object");
            if (seals != 0) ErrnoCheck.Check(Interop.fcntl(fd, F_ADD_SEALS, seals), "F_ADD_SEALS of a shared memory object");
        }
        return handle;
    }

    private const int AT_EMPTY_PATH = 0x1000;

    /// <summary>Every memfd descriptor of a restarted process: its object's seals, mode and owner, its flags and offset.</summary>
    public static void VerifyDescriptors(int pid, ProcessImage process, ContextImage image)
    {
        foreach (var d in process.Files.Descriptors.Where(d => d.Kind == FileDescriptorKind.Memfd && d.SavedFileKey is not null))
        {
            var content = process.FileContents.FirstOrDefault(f => f.Record.Key == d.SavedFileKey)
                ?? image.FileContents.FirstOrDefault(f => f.Record.Key == d.SavedFileKey);
            if (content?.Record.Seals is null) continue;
            Verify(pid, d.Fd, content.Record);
            var now = Proc.ProcFds.ReadOne(pid, d.Fd)
                ?? throw RestartCheck.Mismatch(pid, $"descriptor {d.Fd} ({d.Path})", "open", "closed");
            const int O_CLOEXEC = 0x80000;
            RestartCheck.Expect(pid, $"descriptor {d.Fd} ({d.Path}): flags", Convert.ToString(d.Flags & ~O_CLOEXEC, 8), Convert.ToString(now.Flags & ~O_CLOEXEC, 8));
            RestartCheck.Expect(pid, $"descriptor {d.Fd} ({d.Path}): offset", d.Position, now.Position);
        }
    }

    /// <summary>
    /// The object behind descriptor <paramref name="fd"/> of a restarted process has the saved mode
    /// and seals (read through /proc/PID/fd, which reaches the object itself).
    /// </summary>
    public static unsafe void Verify(int pid, int fd, FileContentRecord saved)
    {
        if (saved.Seals is not { } seals) return;
        var what = $"descriptor {fd} ({saved.Path})";
        var opened = Interop.open($"/proc/{pid}/fd/{fd}", Interop.O_RDONLY | Interop.O_CLOEXEC, 0);
        if (opened < 0) throw RestartCheck.Mismatch(pid, what, "open", $"not openable ({Marshal.GetPInvokeErrorMessage(ErrnoCheck.LastErrno)})");
        try
        {
            RestartCheck.Expect(pid, $"{what}: seals", $"0x{seals:x}", $"0x{Interop.fcntl(opened, F_GET_SEALS, 0):x}");
            Stat st;
            if (Interop.fstat(opened, &st) != 0) throw new NativeException($"fstat of {what} of process {pid}", ErrnoCheck.LastErrno);
            RestartCheck.Expect(pid, $"{what}: mode", Convert.ToString(saved.Identity.Mode & 0xfff, 8), Convert.ToString(st.Mode & 0xfff, 8));
            if (saved.Owner is { } owner) RestartCheck.Expect(pid, $"{what}: owner", $"{owner}:{saved.Group}", $"{st.Uid}:{st.Gid}");
        }
        finally { Interop.close(opened); }
    }

    /// <summary>"/memfd:doublemapper (deleted)" → "doublemapper"; "/dev/zero (deleted)" → "dev/zero".</summary>
    private static string NameOf(string path)
    {
        var name = path.EndsWith(" (deleted)", StringComparison.Ordinal) ? path[..^10] : path;
        name = name.StartsWith("/memfd:", StringComparison.Ordinal) ? name[7..] : name.TrimStart('/');
        return name.Length > 240 ? name[..240] : name;
    }

    /// <summary>The engine's descriptor of the object with this key.</summary>
    public int EngineFd(string key) => (int)_objects[key].DangerousGetHandle();

    public bool Contains(string key) => _objects.ContainsKey(key);

    private readonly HashSet<string> _originalsTaken = [];

    /// <summary>True the first time only, for each object: who gets the memfd_create file itself.</summary>
    public bool TakeOriginal(string key) => _originalsTaken.Add(key);

    public void Dispose()
    {
        foreach (var h in _objects.Values) h.Dispose();
        _objects.Clear();
    }
}
