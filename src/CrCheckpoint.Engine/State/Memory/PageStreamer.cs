using CrCheckpoint.Engine.Format;
using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Tracing;

namespace CrCheckpoint.Engine.State.Memory;

/// <summary>
/// Copies the planned pages of a frozen process into MemoryPages records, streaming: a fixed
/// buffer is filled with one process_vm_readv over many runs, checksummed and written, so the
/// engine never holds more than that buffer whatever the size of the image.
/// </summary>
public sealed unsafe class PageStreamer : IDisposable
{
    private const int BufferBytes = 8 << 20;
    private const int MaxIovecs = 1024;
    private readonly byte* _buffer;
    private readonly IoVec* _local;
    private readonly IoVec* _remote;

    public PageStreamer()
    {
        _buffer = (byte*)NativeMemory.AlignedAlloc(BufferBytes, 4096);
        // Fault the buffer in and run the checksum once now, before any process is frozen.
        NativeMemory.Clear(_buffer, BufferBytes);
        System.IO.Hashing.XxHash3.HashToUInt64(new ReadOnlySpan<byte>(_buffer, BufferBytes));
        _local = (IoVec*)NativeMemory.Alloc((nuint)(MaxIovecs * sizeof(IoVec)));
        _remote = (IoVec*)NativeMemory.Alloc((nuint)(MaxIovecs * sizeof(IoVec)));
    }

    public long BytesCopied { get; private set; }

    public ulong Write(ContextWriter writer, int pid, AreaPlan plan)
    {
        var meta = new MemoryPagesRecord
        {
            Pid = pid,
            AreaStart = plan.Area.Start,
            Runs = plan.Runs.Select(r => new[] { r.FirstPage, r.Count }).ToArray(),
        };
        var total = plan.Runs.Sum(r => r.Count) * 4096L;
        var record = writer.BeginDataRecord(RecordKind.MemoryPages, meta, total);
        var readable = plan.Area.Read;

        // Walk the runs, cutting them into buffer-sized pieces.
        var filled = 0;
        var iovecs = 0;
        foreach (var run in plan.Runs)
        {
            var address = plan.Area.Start + (ulong)run.FirstPage * 4096;
            var remaining = run.Count * 4096L;
            while (remaining > 0)
            {
                var take = (int)Math.Min(remaining, BufferBytes - filled);
                _remote[iovecs] = new IoVec { Base = (nint)address, Length = (nuint)take };
                _local[iovecs] = new IoVec { Base = (nint)(_buffer + filled), Length = (nuint)take };
                iovecs++;
                filled += take;
                address += (ulong)take;
                remaining -= take;
                if (filled == BufferBytes || iovecs == MaxIovecs)
                {
                    Flush(pid, record, readable, iovecs, filled);
                    filled = 0;
                    iovecs = 0;
                }
            }
        }
        if (filled > 0) Flush(pid, record, readable, iovecs, filled);
        return record.Complete();
    }

    private void Flush(int pid, DataRecordWriter record, bool readable, int iovecs, int filled)
    {
        long got = readable ? ProcessMemory.ReadV(pid, _local, iovecs, _remote, iovecs) : -1;
        if (got != filled)
        {
            // Pages the target cannot read itself (PROT_NONE, guard areas written earlier): /proc/PID/mem.
            for (var i = 0; i < iovecs; i++)
                ProcessMemory.ReadThroughProcMem(pid, (ulong)_remote[i].Base,
                    new Span<byte>((void*)_local[i].Base, (int)_local[i].Length));
        }
        record.Write(new ReadOnlySpan<byte>(_buffer, filled));
        BytesCopied += filled;
    }

    public void Dispose()
    {
        NativeMemory.AlignedFree(_buffer);
        NativeMemory.Free(_local);
        NativeMemory.Free(_remote);
    }
}
