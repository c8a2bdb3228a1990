using CrCheckpoint.Engine.Proc;

namespace CrCheckpoint.Engine.Tracing;

/// <summary>
/// Finds a `syscall` instruction (0f 05) already present in a process's executable memory, so remote
/// calls need no code poked into the target. The vDSO always has some (its fallback paths make real
/// system calls); any other executable mapping will do otherwise.
/// </summary>
internal static class SyscallInstruction
{
    private static ReadOnlySpan<byte> SyscallBytes => [0x0f, 0x05];

    internal static ulong Find(int pid, IReadOnlyList<MemoryArea> areas)
    {
        var candidates = areas.Where(a => a.Execute && a.Read)
            .OrderBy(a => a.Path == "[vdso]" ? 0 : 1);
        foreach (var area in candidates)
        {
            var length = (int)Math.Min(area.Length, 1 << 20);
            var bytes = new byte[length];
            try { ProcessMemory.Read(pid, area.Start, bytes); }
            catch (IOException) { continue; }
            var at = bytes.AsSpan().IndexOf(SyscallBytes);
            if (at >= 0) return area.Start + (ulong)at;
        }
        throw new InvalidOperationException($"process {pid} has no syscall instruction in executable memory to run remote calls with");
    }
}
