using CrCheckpoint.Engine.Format;
using CrCheckpoint.Engine.State.Memory;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>Streams a whole file (unlinked, or asked for by --save-*) into a FileContent record.</summary>
public static class FileContentWriter
{
    public static void Write(ContextWriter writer, FileToSave file, byte[] buffer)
    {
        using var source = new FileStream(file.SourcePath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 0);
        var length = file.Identity.Size;
        var meta = new FileContentRecord { Key = file.Key, Path = file.Path, Identity = file.Identity, Reason = file.Reason };
        var record = writer.BeginDataRecord(RecordKind.FileContent, meta, length);
        long done = 0;
        while (done < length)
        {
            var n = source.Read(buffer, 0, (int)Math.Min(buffer.Length, length - done));
            if (n == 0)
            {
                // The file shrank after it was measured: keep the declared length, zero-filled.
                Array.Clear(buffer);
                n = (int)Math.Min(buffer.Length, length - done);
            }
            record.Write(buffer.AsSpan(0, n));
            done += n;
        }
        record.Complete();
    }
}
