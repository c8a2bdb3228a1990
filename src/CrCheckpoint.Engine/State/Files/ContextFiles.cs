using CrCheckpoint.Engine.Image;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>Brings files saved inside a context file (unlinked files) back onto the file system.</summary>
public sealed class ContextFiles(ContextImage image)
{
    /// <summary>
    /// Writes the saved contents to the original path, or beside it when that name is taken again,
    /// and returns where; the caller unlinks it once the process has it open.
    /// </summary>
    public string Recreate(string key, string originalPath)
    {
        var content = image.FileContents.First(f => f.Record.Key == key);
        var directory = Path.GetDirectoryName(originalPath) ?? "/";
        if (!Directory.Exists(directory)) directory = Path.GetTempPath();
        var path = File.Exists(originalPath) || !Directory.Exists(Path.GetDirectoryName(originalPath))
            ? Path.Combine(directory, $".crrestart.{Environment.ProcessId}.{Random.Shared.Next():x8}")
            : originalPath;
        using var source = new FileStream(content.Source, FileMode.Open, FileAccess.Read, FileShare.Read, 0);
        using var target = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 0);
        var identity = content.Record.Identity;
        // Only the ranges that held data are written, so the holes of a sparse file stay holes.
        var runs = content.Record.Runs ?? [[0, content.DataLength]];
        source.Seek(content.DataOffset, SeekOrigin.Begin);
        var buffer = new byte[1 << 20];
        foreach (var run in runs)
        {
            for (long done = 0; done < run[1];)
            {
                var n = source.Read(buffer, 0, (int)Math.Min(buffer.Length, run[1] - done));
                if (n == 0) throw new EndOfStreamException($"the context file ends inside the saved contents of {originalPath}");
                RandomAccess.Write(target.SafeFileHandle, buffer.AsSpan(0, n), run[0] + done);
                done += n;
            }
        }
        target.SetLength(identity.Size);
        GiveBackAttributes((int)target.SafeFileHandle.DangerousGetHandle(), identity, originalPath);
        return path;
    }

    /// <summary>Owner and group first (chown clears set-id bits), then the mode, then the times the writes changed.</summary>
    private static unsafe void GiveBackAttributes(int fd, FileIdentity identity, string originalPath)
    {
        if (identity.Owner is { } owner && identity.Group is { } group && Native.Interop.fchown(fd, owner, group) != 0)
            throw new Native.NativeException($"giving {originalPath} back its owner {owner}:{group}", Native.ErrnoCheck.LastErrno);
        if (Native.Interop.fchmod(fd, (int)(identity.Mode & 0xfff)) != 0)
            throw new Native.NativeException($"giving {originalPath} back its mode", Native.ErrnoCheck.LastErrno);
        const long UTIME_OMIT = (1L << 30) - 2;
        var times = stackalloc long[4] { 0, UTIME_OMIT, identity.ModifiedSeconds, identity.ModifiedNanoseconds };
        if (Native.Interop.futimens(fd, times) != 0)
            throw new Native.NativeException($"giving {originalPath} back its modification time", Native.ErrnoCheck.LastErrno);
    }
}
