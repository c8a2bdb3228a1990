using CrCheckpoint.Engine.Native;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.Tracing;

/// <summary>One system call of a batch: number and six arguments.</summary>
public readonly record struct RemoteCall(long Number, long A1 = 0, long A2 = 0, long A3 = 0, long A4 = 0, long A5 = 0, long A6 = 0);

/// <summary>
/// Many system calls in one trip: a table of calls is written into the scratch page and a
/// 46-byte loop placed beside it runs them one after the other inside the process, storing each
/// result, then stops on an int3. A rebuild issues hundreds of mmap/pread/mprotect calls; one
/// ptrace round trip each would cost more than the calls themselves. Used only in processes the
/// engine is rebuilding, whose scratch page is executable.
/// </summary>
public sealed unsafe partial class Tracee
{
    // loop: mov rax,[rbx]; cmp rax,-1; je done; mov rdi..r9,[rbx+8..48]; syscall; mov [rbx+56],rax;
    //       add rbx,64; jmp loop; done: int3
    private static ReadOnlySpan<byte> BatchLoop =>
    [
        0x48, 0x8B, 0x03, 0x48, 0x83, 0xF8, 0xFF, 0x74, 0x24,
        0x48, 0x8B, 0x7B, 0x08, 0x48, 0x8B, 0x73, 0x10, 0x48, 0x8B, 0x53, 0x18,
        0x4C, 0x8B, 0x53, 0x20, 0x4C, 0x8B, 0x43, 0x28, 0x4C, 0x8B, 0x4B, 0x30,
        0x0F, 0x05, 0x48, 0x89, 0x43, 0x38, 0x48, 0x83, 0xC3, 0x40, 0xEB, 0xD3, 0xCC,
    ];

    private const int BatchEntry = 64, BatchCodeRoom = 64;
    private bool _batchLoopWritten;

    public long[] RunBatch(IReadOnlyList<RemoteCall> calls)
    {
        var results = new long[calls.Count];
        var perTrip = (ScratchSize - BatchCodeRoom) / BatchEntry - 1;
        var code = Scratch + ScratchSize - BatchCodeRoom;
        if (!_batchLoopWritten)
        {
            ProcessMemory.Write(Pid, code, BatchLoop);
            _batchLoopWritten = true;
        }
        for (var first = 0; first < calls.Count; first += perTrip)
        {
            var count = Math.Min(perTrip, calls.Count - first);
            var table = new long[(count + 1) * 8];
            for (var i = 0; i < count; i++)
            {
                var c = calls[first + i];
                table[i * 8] = c.Number;
                table[i * 8 + 1] = c.A1; table[i * 8 + 2] = c.A2; table[i * 8 + 3] = c.A3;
                table[i * 8 + 4] = c.A4; table[i * 8 + 5] = c.A5; table[i * 8 + 6] = c.A6;
            }
            table[count * 8] = -1;
            WriteScratch(MemoryMarshal.AsBytes(table.AsSpan()));
            RunLoop(code);
            var back = new long[count * 8];
            ReadScratch(MemoryMarshal.AsBytes(back.AsSpan()));
            for (var i = 0; i < count; i++) results[first + i] = back[i * 8 + 7];
        }
        return results;
    }

    private void RunLoop(ulong code)
    {
        if (!_signalsBlocked)
        {
            SetSignalMask(ulong.MaxValue);
            _signalsBlocked = true;
        }
        var regs = _original;
        regs.Rip = code;
        regs.Rbx = Scratch;
        regs.OrigRax = ulong.MaxValue;
        regs.Eflags &= ~0x100UL;
        SetRegisters(regs);
        var deliver = 0;
        while (true)
        {
            Resume(PTRACE_CONT, deliver);
            deliver = 0;
            var status = WaitForStop();
            if (status.PtraceEvent != 0) continue;
            if (status.StopSignal == Signals.SIGTRAP && GetRegisters().Rip == code + (ulong)BatchLoop.Length) return;
            if (status.StopSignal is Signals.SIGSTOP or Signals.SIGTSTP or Signals.SIGTTIN or Signals.SIGTTOU)
            {
                _deferredSignals.Add(status.StopSignal);
                continue;
            }
            throw new InvalidOperationException($"the batch of remote calls in process {Pid} stopped with {Signals.Name(status.StopSignal)}");
        }
    }
}
