using CrCheckpoint.Engine.Native;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.Tracing;

/// <summary>One system call of a batch: number and six arguments.</summary>
public readonly record struct RemoteCall(long Number, long A1 = 0, long A2 = 0, long A3 = 0, long A4 = 0, long A5 = 0, long A6 = 0);

/// <summary>
/// Many system calls in one trip: a table of calls is written into the scratch page and a small
/// loop placed beside it runs them one after the other inside the process, storing each result,
/// then stops on an int3. A rebuild issues hundreds of mmap/pread/mprotect calls; one ptrace round
/// trip each would cost more than the calls themselves. Used only in processes the engine is
/// rebuilding, whose scratch page is executable.
/// <para>
/// A clone3 entry whose third argument is non-zero creates a thread that runs a table of its own:
/// the new thread comes out of clone3 inside the loop with a result of 0 and switches to the table
/// that argument names. So one trip of the leader creates every thread of a process, and each new
/// thread then makes its own per-thread calls (robust list, rseq...) in a single trip of its own.
/// </para>
/// </summary>
public sealed unsafe partial class Tracee
{
    // loop:  mov rax,[rbx]; cmp rax,-1; je done; mov rdi..r9,[rbx+8..48]; syscall;
    //        test rax,rax; jnz store; cmp qword [rbx],435 (clone3); je child
    // store: mov [rbx+56],rax; add rbx,64; jmp loop
    // child: mov rbx,[rbx+24]; jmp loop
    // done:  int3
    private static ReadOnlySpan<byte> BatchLoop =>
    [
        0x48, 0x8B, 0x03, 0x48, 0x83, 0xF8, 0xFF, 0x74, 0x38,
        0x48, 0x8B, 0x7B, 0x08, 0x48, 0x8B, 0x73, 0x10, 0x48, 0x8B, 0x53, 0x18,
        0x4C, 0x8B, 0x53, 0x20, 0x4C, 0x8B, 0x43, 0x28, 0x4C, 0x8B, 0x4B, 0x30,
        0x0F, 0x05,
        0x48, 0x85, 0xC0, 0x75, 0x09, 0x48, 0x81, 0x3B, 0xB3, 0x01, 0x00, 0x00, 0x74, 0x0A,
        0x48, 0x89, 0x43, 0x38, 0x48, 0x83, 0xC3, 0x40, 0xEB, 0xC5,
        0x48, 0x8B, 0x5B, 0x18, 0xEB, 0xBF,
        0xCC,
    ];

    /// <summary>Bytes per entry of a batch table: number, six arguments, result.</summary>
    public const int BatchEntry = 64;
    private const int BatchCodeRoom = 128;
    private bool _batchLoopWritten;

    /// <summary>The part of the scratch page that batch tables and their data may use (the loop sits after it).</summary>
    public const int BatchRoom = ScratchSize - BatchCodeRoom;

    public long[] RunBatch(IReadOnlyList<RemoteCall> calls)
    {
        var results = new long[calls.Count];
        var perTrip = BatchRoom / BatchEntry - 1;
        for (var first = 0; first < calls.Count; first += perTrip)
        {
            var count = Math.Min(perTrip, calls.Count - first);
            var table = EncodeBatch(calls.Skip(first).Take(count).ToList());
            WriteScratch(table);
            RunBatchAt(Scratch);
            ReadScratch(table);
            for (var i = 0; i < count; i++) results[first + i] = BatchResult(table, i);
        }
        return results;
    }

    /// <summary>A batch table: each call in its entry, then the -1 that ends the table.</summary>
    public static byte[] EncodeBatch(IReadOnlyList<RemoteCall> calls)
    {
        var table = new long[(calls.Count + 1) * 8];
        for (var i = 0; i < calls.Count; i++)
        {
            var c = calls[i];
            table[i * 8] = c.Number;
            table[i * 8 + 1] = c.A1; table[i * 8 + 2] = c.A2; table[i * 8 + 3] = c.A3;
            table[i * 8 + 4] = c.A4; table[i * 8 + 5] = c.A5; table[i * 8 + 6] = c.A6;
        }
        table[calls.Count * 8] = -1;
        return MemoryMarshal.AsBytes(table.AsSpan()).ToArray();
    }

    /// <summary>The result the loop stored for entry <paramref name="index"/> of a table read back from the process.</summary>
    public static long BatchResult(ReadOnlySpan<byte> table, int index) =>
        BitConverter.ToInt64(table.Slice(index * BatchEntry + 56, 8));

    /// <summary>Runs the table already written at <paramref name="table"/> (in the scratch page) in this thread, to its end.</summary>
    public void RunBatchAt(ulong table)
    {
        var code = BatchLoopAddress();
        if (!_signalsBlocked)
        {
            SetSignalMask(ulong.MaxValue);
            _signalsBlocked = true;
        }
        var regs = _original;
        regs.Rip = code;
        regs.Rbx = table;
        regs.OrigRax = ulong.MaxValue;
        regs.Eflags &= ~0x100UL;
        SetRegisters(regs);
        Resume(PTRACE_CONT, 0);
        WaitForBatchEnd();
    }

    /// <summary>
    /// Takes over a thread that a clone3 entry of <paramref name="creator"/>'s batch created, and
    /// lets it run its own table; <see cref="WaitForBatchEnd"/> waits until it has. It was born with
    /// every signal blocked (the creator's mask during a batch) and shares the creator's scratch page.
    /// </summary>
    public static Tracee StartBatchThread(Tracee creator, int tid)
    {
        var thread = new Tracee(creator.Pid, tid) { _attached = true };
        var status = thread.WaitForStop();
        if (status.PtraceEvent != PTRACE_EVENT_STOP)
            throw new InvalidOperationException($"new thread {tid} first stopped with {status}, expected its attach stop");
        // Its registers are the creator's but for rax and rip; they serve as the base for remote
        // calls until the thread's own are set, so reading them back would be a wasted round trip.
        thread._original = creator._original;
        thread._originalSigMask = creator._originalSigMask;
        thread._signalsBlocked = true;
        thread.ShareRemoteStateOf(creator);
        thread._batchLoopWritten = true;
        thread.Resume(PTRACE_CONT, 0);
        return thread;
    }

    /// <summary>Waits until this thread stops on the int3 that ends a batch, continuing it past ptrace events.</summary>
    public void WaitForBatchEnd()
    {
        var end = Scratch + BatchRoom + (ulong)BatchLoop.Length;
        while (true)
        {
            var status = WaitForStop();
            if (status.PtraceEvent != 0)
            {
                Resume(PTRACE_CONT, 0);
                continue;
            }
            if (status.StopSignal == Signals.SIGTRAP && GetRegisters().Rip == end)
            {
                // The int3's SIGTRAP is forced: the kernel unblocked it in the thread's mask (and reset
                // its handler, which is why dispositions are restored after the batches). Blocked again,
                // so that a pending SIGTRAP restored later waits in its queue with its siginfo.
                SetSignalMask(ulong.MaxValue);
                return;
            }
            if (status.StopSignal is Signals.SIGSTOP or Signals.SIGTSTP or Signals.SIGTTIN or Signals.SIGTTOU)
            {
                _deferredSignals.Add(status.StopSignal);
                Resume(PTRACE_CONT, 0);
                continue;
            }
            throw new InvalidOperationException($"the batch of remote calls in thread {Tid} of process {Pid} stopped with {Signals.Name(status.StopSignal)}");
        }
    }

    private ulong BatchLoopAddress()
    {
        var code = Scratch + BatchRoom;
        if (!_batchLoopWritten)
        {
            ProcessMemory.Write(Pid, code, BatchLoop);
            _batchLoopWritten = true;
        }
        return code;
    }
}
