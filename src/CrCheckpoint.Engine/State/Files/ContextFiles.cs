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
        File.SetUnixFileMode(path, (UnixFileMode)(content.Record.Identity.Mode & 0xfff));
        source.Seek(content.DataOffset, SeekOrigin.Begin);
        var buffer = new byte[1 << 20];
        var left = content.DataLength;
        while (left > 0)
        {
            var n = source.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
            if (n == 0) throw new EndOfStreamException($"the context file ends inside the saved contents of {originalPath}");
            target.Write(buffer, 0, n);
            left -= n;
        }
        return path;
    }
}
