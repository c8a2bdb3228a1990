using CrCheckpoint.Engine.Native;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.Tracing;

/// <summary>
/// An argument of a remote call in a batch: a number, or a pointer to bytes that the core places in
/// the scratch page beside the batch (<see cref="Bytes"/>), so that no caller lays the page out.
/// </summary>
public readonly struct RemoteArg
{
    internal readonly long Value;
    internal readonly byte[]? Data;

    private RemoteArg(long value, byte[]? data)
    {
        Value = value;
        Data = data;
    }

    public static implicit operator RemoteArg(long value) => new(value, null);

    /// <summary>
    /// A pointer to <paramref name="offset"/> bytes into a copy of <paramref name="data"/>: every
    /// argument naming the same array, in one batch, points into the same copy.
    /// </summary>
    public static RemoteArg Bytes(byte[] data, int offset = 0) => new(offset, data);
}

/// <summary>One system call: number and six arguments.</summary>
public readonly record struct RemoteCall(long Number, RemoteArg A1 = default, RemoteArg A2 = default, RemoteArg A3 = default,
    RemoteArg A4 = default, RemoteArg A5 = default, RemoteArg A6 = default)
{
    internal RemoteArg Arg(int index) => index switch { 0 => A1, 1 => A2, 2 => A3, 3 => A4, 4 => A5, _ => A6 };
}

/// <summary>
/// System calls a thread makes one after the other in one trip (<see cref="Tracee.Run"/>). Each has
/// a name for the message of its failure; a call added with <see cref="AddUnchecked"/> may fail.
/// </summary>
public sealed class RemoteBatch
{
    /// <summary>The most data one call of a batch may point to.</summary>
    public const int MaxDataBytes = ScratchPage.Room / 2;

    internal readonly record struct Entry(string Name, RemoteCall Call, bool Checked);

    internal readonly List<Entry> Calls = [];

    public int Count => Calls.Count;

    public RemoteBatch Add(string name, RemoteCall call)
    {
        Calls.Add(new Entry(name, call, true));
        return this;
    }

    /// <summary>A call whose result the caller reads itself (setfsuid answers the previous id; an mmap must land where asked).</summary>
    public RemoteBatch AddUnchecked(string name, RemoteCall call)
    {
        Calls.Add(new Entry(name, call, false));
        return this;
    }

    public RemoteBatch AddRange(RemoteBatch other)
    {
        Calls.AddRange(other.Calls);
        return this;
    }
}

/// <summary>A thread for <see cref="Tracee.CreateThreads"/>: the id it asks for (null: any), its clear_child_tid, and the calls it makes itself.</summary>
public sealed record NewThread(int? Tid, ulong ClearChildTid, RemoteBatch Calls);

/// <summary>
/// Many system calls in one trip: a table of calls is written into the scratch page and a small
/// loop placed at its end runs them one after the other inside the process, storing each result,
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
    private const int Entry = 64;

    /// <summary>
    /// Runs every call of <paramref name="batch"/> in this thread, in as few trips as the scratch
    /// page allows, and returns the raw results; a failed checked call then throws.
    /// </summary>
    public long[] Run(RemoteBatch batch)
    {
        var calls = batch.Calls;
        var results = new long[calls.Count];
        for (var first = 0; first < calls.Count;)
        {
            var image = new BatchImage();
            var count = 0;
            while (first + count < calls.Count && image.TryAdd(calls[first + count], Page.Free - Entry * (count + 2) - image.DataBytes)) count++;
            if (count == 0) throw new InvalidOperationException($"{calls[first].Name}: its data does not fit the scratch page");
            var at = Page.Address + (ulong)Page.Top;
            var bytes = image.Encode(calls, first, count, at, out var tableBytes);
            ProcessMemory.Write(Pid, at, bytes);
            RunTableAt(at);
            ProcessMemory.Read(Pid, at, bytes.AsSpan(0, tableBytes));
            for (var i = 0; i < count; i++) results[first + i] = ResultOf(bytes, 0, i);
            first += count;
        }
        for (var i = 0; i < calls.Count; i++)
            if (calls[i].Checked && RemoteResult.Failed(results[i], out var errno))
                throw new NativeException($"{calls[i].Name} in thread {Tid} of process {Pid}", (int)errno);
        return results;
    }

    private const ulong CloneThread = 0x100 | 0x200 | 0x400 | 0x800 | 0x2000 | 0x10000 | 0x40000; // VM FS FILES SIGHAND PTRACE THREAD SYSVSEM
    private const ulong CLONE_CHILD_CLEARTID = 0x00200000;
    private const int CloneArgsSize = 88;

    /// <summary>
    /// Makes this thread (the leader of a process being rebuilt) run <paramref name="leaderCalls"/>
    /// and then create <paramref name="threads"/>, in one trip of the leader and one of each new
    /// thread: a clone3 per thread (with set_tid for the id it asks for, and CLONE_CHILD_CLEARTID for
    /// its clear_child_tid); each new thread, traced by us from birth (CLONE_PTRACE, which unlike
    /// PTRACE_O_TRACECLONE does not stop the leader at every clone), makes its own calls and stops.
    /// None runs the program before its registers are replaced. More trips only when the scratch
    /// page is full. Returns the new threads in order; on a failure every one made is killed and
    /// reaped, and a failed clone3 is reported by <paramref name="cloneFailed"/> (index, errno).
    /// </summary>
    public List<Tracee> CreateThreads(RemoteBatch leaderCalls, IReadOnlyList<NewThread> threads, Func<int, Errno, Exception> cloneFailed)
    {
        var created = new List<Tracee>();
        try
        {
            var own = leaderCalls.Calls;
            var next = 0;
            do
            {
                // The leader's table (its calls, a clone3 per thread, the end), its data, then one section per thread.
                var leaderData = new BatchImage();
                foreach (var c in own)
                    if (!leaderData.TryAdd(c, int.MaxValue)) throw new InvalidOperationException($"{c.Name}: its data does not fit the scratch page");
                var sections = new List<BatchImage>();
                var used = leaderData.DataBytes + (own.Count + 1) * Entry;
                while (next + sections.Count < threads.Count)
                {
                    var section = new BatchImage();
                    foreach (var c in threads[next + sections.Count].Calls.Calls)
                        if (!section.TryAdd(c, int.MaxValue)) throw new InvalidOperationException($"{c.Name}: its data does not fit the scratch page");
                    var size = 96 + (section.Calls + 1) * Entry + section.DataBytes;
                    if (used + size + Entry > Page.Free) break;
                    sections.Add(section);
                    used += size + Entry;
                }
                if (sections.Count == 0 && next < threads.Count) throw new InvalidOperationException("a new thread's calls do not fit the scratch page");

                var at = Page.Address + (ulong)Page.Top;
                var image = new byte[used];
                var leaderTable = (own.Count + sections.Count + 1) * Entry;
                var sectionAt = leaderTable + leaderData.DataBytes;
                var clones = new List<RemoteBatch.Entry>();
                for (var i = 0; i < sections.Count; i++)
                {
                    var thread = threads[next + i];
                    var section = sections[i];
                    var sectionAddress = at + (ulong)sectionAt;
                    // struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack,
                    // stack_size, tls, set_tid, set_tid_size, cgroup. The stack stays 0: the batch
                    // loop touches no stack, and the thread's own comes with its registers.
                    var args = new ulong[11];
                    args[0] = CloneThread | (thread.ClearChildTid != 0 ? CLONE_CHILD_CLEARTID : 0);
                    args[2] = thread.ClearChildTid;
                    if (thread.Tid is { } tid)
                    {
                        BitConverter.TryWriteBytes(image.AsSpan(sectionAt + CloneArgsSize, 4), tid);
                        args[8] = sectionAddress + CloneArgsSize;
                        args[9] = 1;
                    }
                    MemoryMarshal.AsBytes(args.AsSpan()).CopyTo(image.AsSpan(sectionAt));
                    var table = section.Encode(thread.Calls.Calls, 0, section.Calls, sectionAddress + 96, out _);
                    table.CopyTo(image.AsSpan(sectionAt + 96));
                    clones.Add(new RemoteBatch.Entry("clone3", new RemoteCall(Syscalls.clone3, (long)sectionAddress, CloneArgsSize, (long)sectionAddress + 96), false));
                    sectionAt += 96 + table.Length;
                }
                leaderData.Encode([.. own, .. clones], 0, own.Count + clones.Count, at, out _).CopyTo(image, 0);

                ProcessMemory.Write(Pid, at, image);
                RunTableAt(at);
                ProcessMemory.Read(Pid, at, image.AsSpan(0, leaderTable));

                Exception? failure = Failure(image, 0, own, $"thread {Tid} of process {Pid}");
                var started = new List<Tracee>();
                for (var i = 0; i < sections.Count; i++)
                {
                    var tid = ResultOf(image, 0, own.Count + i);
                    if (tid > 0)
                    {
                        var thread = StartBatchThread((int)tid);
                        created.Add(thread);
                        started.Add(thread);
                    }
                    else failure ??= cloneFailed(next + i, (Errno)(int)-tid);
                }
                foreach (var thread in started) thread.WaitForBatchEnd();
                if (failure is not null) throw failure;

                var firstSection = leaderTable + leaderData.DataBytes;
                ProcessMemory.Read(Pid, at + (ulong)firstSection, image.AsSpan(firstSection));
                sectionAt = firstSection;
                for (var i = 0; i < sections.Count; i++)
                {
                    var calls = threads[next + i].Calls.Calls;
                    if (Failure(image, sectionAt + 96, calls, $"thread {created[next + i].Tid} of process {Pid}") is { } e) throw e;
                    sectionAt += 96 + (sections[i].Calls + 1) * Entry + sections[i].DataBytes;
                }
                own = [];
                next += sections.Count;
            } while (next < threads.Count);
            return created;
        }
        catch
        {
            foreach (var t in created) t.KillAndReap();
            throw;
        }
    }

    private static Exception? Failure(byte[] image, int tableAt, List<RemoteBatch.Entry> calls, string who)
    {
        for (var i = 0; i < calls.Count; i++)
            if (calls[i].Checked && RemoteResult.Failed(ResultOf(image, tableAt, i), out var errno))
                return new NativeException($"{calls[i].Name} in {who}", (int)errno);
        return null;
    }

    /// <summary>The result the loop stored for entry <paramref name="index"/> of the table at <paramref name="tableAt"/>.</summary>
    private static long ResultOf(byte[] image, int tableAt, int index) =>
        BitConverter.ToInt64(image, tableAt + index * Entry + 56);

    /// <summary>
    /// One table and the data its calls point to: the table, then each distinct array once, 8-byte
    /// aligned. Addresses are only known when it is encoded at its place in the page.
    /// </summary>
    internal sealed class BatchImage
    {
        private readonly Dictionary<byte[], int> _placed = new(ReferenceEqualityComparer.Instance);
        private readonly List<byte[]> _order = [];
        public int DataBytes { get; private set; }
        public int Calls { get; private set; }

        public bool TryAdd(RemoteBatch.Entry call, int room)
        {
            var extra = 0;
            for (var k = 0; k < 6; k++)
                if (call.Call.Arg(k).Data is { } d && !_placed.ContainsKey(d)) extra += (d.Length + 7) & ~7;
            if (extra > room) return false;
            for (var k = 0; k < 6; k++)
                if (call.Call.Arg(k).Data is { } d && !_placed.ContainsKey(d))
                {
                    _placed[d] = DataBytes;
                    _order.Add(d);
                    DataBytes += (d.Length + 7) & ~7;
                }
            Calls++;
            return true;
        }

        /// <summary>The table of calls[first..first+count] (ended by -1) followed by the data, as it will lie at <paramref name="at"/>.</summary>
        public byte[] Encode(List<RemoteBatch.Entry> calls, int first, int count, ulong at, out int tableBytes)
        {
            tableBytes = (count + 1) * Entry;
            var bytes = new byte[tableBytes + DataBytes];
            var table = MemoryMarshal.Cast<byte, long>(bytes.AsSpan(0, tableBytes));
            var dataAt = (long)at + tableBytes;
            for (var i = 0; i < count; i++)
            {
                var c = calls[first + i].Call;
                table[i * 8] = c.Number;
                for (var k = 0; k < 6; k++)
                    table[i * 8 + 1 + k] = c.Arg(k).Data is { } d ? dataAt + _placed[d] + c.Arg(k).Value : c.Arg(k).Value;
            }
            table[count * 8] = -1;
            foreach (var d in _order) d.CopyTo(bytes, tableBytes + _placed[d]);
            return bytes;
        }
    }

    /// <summary>Runs the table written at <paramref name="table"/> (in the scratch page) in this thread, to its end.</summary>
    private void RunTableAt(ulong table)
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
    /// Takes over a thread that a clone3 entry of this thread's batch created, and lets it run its
    /// own table; <see cref="WaitForBatchEnd"/> waits until it has. It was born with every signal
    /// blocked (the creator's mask during a batch) and shares the creator's scratch page.
    /// </summary>
    private Tracee StartBatchThread(int tid)
    {
        var thread = new Tracee(Pid, tid) { _attached = true };
        var status = thread.WaitForStop();
        if (status.PtraceEvent != PTRACE_EVENT_STOP)
            throw new InvalidOperationException($"new thread {tid} first stopped with {status}, expected its attach stop");
        // Its registers are the creator's but for rax and rip; they serve as the base for remote
        // calls until the thread's own are set, so reading them back would be a wasted round trip.
        thread._original = _original;
        thread._originalSigMask = _originalSigMask;
        thread._signalsBlocked = true;
        thread.ShareRemoteStateOf(this);
        thread.Resume(PTRACE_CONT, 0);
        return thread;
    }

    /// <summary>Waits until this thread stops on the int3 that ends a batch, continuing it past ptrace events.</summary>
    private void WaitForBatchEnd()
    {
        var end = Page.Address + ScratchPage.Room + (ulong)BatchLoop.Length;
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
        var code = Page.Address + ScratchPage.Room;
        if (!Page.LoopWritten)
        {
            ProcessMemory.Write(Pid, code, BatchLoop);
            Page.LoopWritten = true;
        }
        return code;
    }
}
