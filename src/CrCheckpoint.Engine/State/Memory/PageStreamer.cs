using CrCheckpoint.Engine.Format;
using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Tracing;

namespace CrCheckpoint.Engine.State.Memory;

/// <summary>
/// Copies the planned pages of a frozen process into MemoryPages records, streaming through two
/// fixed buffers: while one is checksummed and written, the next is filled by process_vm_readv on
/// another core. The engine never holds more than the two buffers, whatever the size of the image.
/// </summary>
public sealed unsafe class PageStreamer : IDisposable
{
    private const int BufferBytes = 8 << 20;
    private const int MaxIovecs = 1024;
    private readonly Buffer[] _buffers = [new(), new()];

    public PageStreamer()
    {
        // The buffers come faulted in, and the checksum is compiled now, before any process is frozen.
        var warm = new StreamingXxHash3();
        warm.Append(new ReadOnlySpan<byte>(_buffers[0].Data, 64 << 10));
        warm.GetCurrentHashAsUInt64();
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
        var chunks = Chunks(plan).ToList();
        var readable = plan.Area.Read;

        Task? filling = null;
        try
        {
            for (var i = 0; i < chunks.Count; i++)
            {
                var current = _buffers[i % 2];
                if (filling is null) Fill(pid, readable, current, chunks[i]);
                else filling.GetAwaiter().GetResult();
                filling = i + 1 < chunks.Count ? StartFill(pid, readable, _buffers[(i + 1) % 2], chunks[i + 1]) : null;
                record.Write(new ReadOnlySpan<byte>(current.Data, chunks[i].Bytes));
                BytesCopied += chunks[i].Bytes;
            }
        }
        finally
        {
            // Never leave a copy running into a buffer that may be freed next.
            try { filling?.Wait(); } catch (AggregateException) { }
        }
        return record.Complete();
    }

    /// <summary>A piece of an area's saved pages that fills at most one buffer: remote ranges, in order.</summary>
    private sealed record Chunk(List<(ulong Address, int Length)> Ranges, int Bytes);

    private static IEnumerable<Chunk> Chunks(AreaPlan plan)
    {
        var ranges = new List<(ulong, int)>();
        var filled = 0;
        foreach (var run in plan.Runs)
        {
            var address = plan.Area.Start + (ulong)run.FirstPage * 4096;
            var remaining = run.Count * 4096L;
            while (remaining > 0)
            {
                var take = (int)Math.Min(remaining, BufferBytes - filled);
                ranges.Add((address, take));
                filled += take;
                address += (ulong)take;
                remaining -= take;
                if (filled == BufferBytes || ranges.Count == MaxIovecs)
                {
                    yield return new Chunk(ranges, filled);
                    ranges = [];
                    filled = 0;
                }
            }
        }
        if (filled > 0) yield return new Chunk(ranges, filled);
    }

    private static Task StartFill(int pid, bool readable, Buffer buffer, Chunk chunk) =>
        Task.Factory.StartNew(() => Fill(pid, readable, buffer, chunk), CancellationToken.None,
            TaskCreationOptions.DenyChildAttach, TaskScheduler.Default);

    private static void Fill(int pid, bool readable, Buffer buffer, Chunk chunk) =>
        ProcessMemory.ReadRanges(pid, CollectionsMarshal.AsSpan(chunk.Ranges), new Span<byte>(buffer.Data, chunk.Bytes), direct: readable);

    public void Dispose()
    {
        foreach (var b in _buffers) b.Dispose();
    }

    private sealed class Buffer : IDisposable
    {
        public readonly byte* Data = MapPopulated();

        /// <summary>Huge pages where the system allows them: four faults to fill a buffer instead of two thousand.</summary>
        private static byte* MapPopulated()
        {
            const long PROT_READ = 1, PROT_WRITE = 2, MAP_PRIVATE = 2, MAP_ANONYMOUS = 0x20, MADV_HUGEPAGE = 14, MADV_POPULATE_WRITE = 23;
            var address = Interop.syscall(Syscalls.mmap, 0, BufferBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (address < 0 && address > -4096) throw new NativeException("mmap of a copy buffer", (int)-address);
            Interop.syscall(Syscalls.madvise, address, BufferBytes, MADV_HUGEPAGE);
            if (Interop.syscall(Syscalls.madvise, address, BufferBytes, MADV_POPULATE_WRITE) != 0)
                NativeMemory.Clear((void*)address, BufferBytes);
            return (byte*)address;
        }

        public void Dispose()
        {
            Interop.syscall(Syscalls.munmap, (long)Data, BufferBytes);
        }
    }
}
