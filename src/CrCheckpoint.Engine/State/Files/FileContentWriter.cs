using CrCheckpoint.Engine.Format;
using CrCheckpoint.Engine.State.Memory;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>Streams a whole file (unlinked, or asked for by --save-*) into a FileContent record.</summary>
public static class FileContentWriter
{
    public static void Write(ContextWriter writer, FileToSave file, byte[] buffer)
    {
        using var source = new FileStream(file.SourcePath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 0);
        var runs = file.Sparse ? DataRanges(source.SafeFileHandle, file.Identity.Size) : [[0, file.Identity.Size]];
        var (seals, owner, group) = file.Sparse ? SharedMemoryObjects.Capture(source.SafeFileHandle) : (null, null, null);
        var meta = new FileContentRecord
        {
            Key = file.Key, Path = file.Path, Identity = file.Identity, Reason = file.Reason, Runs = file.Sparse ? runs : null,
            Seals = seals, Owner = owner, Group = group,
        };
        var record = writer.BeginDataRecord(RecordKind.FileContent, meta, runs.Sum(r => r[1]));
        foreach (var run in runs)
        {
            for (long done = 0; done < run[1];)
            {
                var want = (int)Math.Min(buffer.Length, run[1] - done);
                var n = RandomAccess.Read(source.SafeFileHandle, buffer.AsSpan(0, want), run[0] + done);
                if (n == 0)
                {
                    // The file shrank after it was measured: keep the declared length, zero-filled.
                    Array.Clear(buffer, 0, want);
                    n = want;
                }
                record.Write(buffer.AsSpan(0, n));
                done += n;
            }
        }
        record.Complete();
    }

    /// <summary>The ranges of a file that hold data, from SEEK_DATA/SEEK_HOLE, in 4096-byte units.</summary>
    private static long[][] DataRanges(Microsoft.Win32.SafeHandles.SafeFileHandle handle, long size)
    {
        var fd = (int)handle.DangerousGetHandle();
        var runs = new List<long[]>();
        for (long pos = 0; pos < size;)
        {
            var data = Native.Interop.lseek(fd, pos, Native.Interop.SEEK_DATA);
            if (data < 0 || data >= size) break;
            var hole = Native.Interop.lseek(fd, data, Native.Interop.SEEK_HOLE);
            if (hole < 0 || hole > size) hole = size;
            var start = data & ~4095L;
            var end = Math.Min(size, (hole + 4095) & ~4095L);
            runs.Add([start, end - start]);
            pos = end;
        }
        return runs.ToArray();
    }
}
