using CrCheckpoint.Engine.Image;
using CrCheckpoint.Engine.Native;
using Microsoft.Win32.SafeHandles;

namespace CrCheckpoint.Engine.State.Memory;

/// <summary>
/// Shared memory objects (memfd, MAP_SHARED|MAP_ANONYMOUS, System V segments) come back as one
/// memfd each, made and filled by the engine; every area and descriptor that used the object then
/// uses that same memfd, so memory mapped twice (such as .NET's W^X double mapping) stays one.
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
            return objects;
        }
        catch
        {
            objects.Dispose();
            throw;
        }
    }

    private SafeFileHandle Fill(SafeFileHandle context, FileContentImage content, byte[] buffer)
    {
        var name = NameOf(content.Record.Path);
        var namePtr = Marshal.StringToCoTaskMemUTF8(name);
        int fd;
        try { fd = (int)ErrnoCheck.Check(Interop.syscall(Syscalls.memfd_create, namePtr, Interop.MFD_CLOEXEC), "memfd_create"); }
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
        return handle;
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

    public void Dispose()
    {
        foreach (var h in _objects.Values) h.Dispose();
        _objects.Clear();
    }
}
