using CrCheckpoint.Engine.Native;

namespace CrCheckpoint.Engine.Tracing;

/// <summary>
/// Room in the process's scratch page for the pointer arguments of remote calls, handed out as
/// regions: <c>using var scratch = tracee.Scratch();</c> then <see cref="String"/>,
/// <see cref="Struct{T}"/>, <see cref="Bytes"/> or <see cref="Buffer"/>, each a region of its own.
/// Everything allocated is given back when the frame is disposed; frames nest like a stack. A batch
/// (<see cref="Tracee.Run"/>) uses the room above the regions of the open frames.
/// </summary>
public sealed class Scratch : IDisposable
{
    private readonly ScratchPage _page;
    private readonly int _mark;

    internal Scratch(ScratchPage page)
    {
        _page = page;
        _mark = page.Top;
    }

    /// <summary>Room for <paramref name="length"/> bytes, 8-byte aligned, with whatever the page held there before.</summary>
    public ScratchRegion Buffer(int length) => _page.Allocate(length);

    /// <summary>A copy of <paramref name="data"/>.</summary>
    public ScratchRegion Bytes(ReadOnlySpan<byte> data)
    {
        var region = _page.Allocate(data.Length);
        region.Write(data);
        return region;
    }

    /// <summary>A NUL-terminated UTF-8 copy of <paramref name="value"/>.</summary>
    public ScratchRegion String(string value)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(value + "\0");
        if (bytes.Length > _page.Free) throw new ArgumentException($"string too long for a remote call: {value}");
        return Bytes(bytes);
    }

    /// <summary>A copy of a struct the kernel reads (or fills, and <see cref="ScratchRegion.Read{T}"/> reads back).</summary>
    public ScratchRegion Struct<T>(in T value) where T : unmanaged =>
        Bytes(MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value)));

    public void Dispose() => _page.Top = _mark;
}

/// <summary>A piece of the scratch page: its address in the target (what a remote call is given) and its length.</summary>
public readonly struct ScratchRegion
{
    private readonly int _pid;

    internal ScratchRegion(int pid, ulong address, int length)
    {
        _pid = pid;
        Address = address;
        Length = length;
    }

    public ulong Address { get; }
    public int Length { get; }

    /// <summary>The region as a pointer argument of a remote call.</summary>
    public static implicit operator long(ScratchRegion region) => (long)region.Address;

    public ScratchRegion Slice(int start, int length)
    {
        if (start < 0 || length < 0 || start + length > Length) throw new ArgumentOutOfRangeException(nameof(start));
        return new ScratchRegion(_pid, Address + (ulong)start, length);
    }

    public void Write(ReadOnlySpan<byte> data)
    {
        if (data.Length > Length) throw new ArgumentException($"{data.Length} bytes do not fit a scratch region of {Length}");
        ProcessMemory.Write(_pid, Address, data);
    }

    public void Read(Span<byte> destination)
    {
        if (destination.Length > Length) throw new ArgumentException($"{destination.Length} bytes are more than a scratch region of {Length}");
        ProcessMemory.Read(_pid, Address, destination);
    }

    public T Read<T>() where T : unmanaged
    {
        T value = default;
        Read(MemoryMarshal.AsBytes(new Span<T>(ref value)));
        return value;
    }
}

/// <summary>
/// The scratch page of one process (its threads share it): where it is, who unmaps it, and how much
/// of it the open <see cref="Scratch"/> frames hold. The last <see cref="CodeRoom"/> bytes hold the
/// batch loop.
/// </summary>
internal sealed class ScratchPage
{
    public const int Size = 64 * 1024;
    public const int CodeRoom = 128;
    /// <summary>What regions and batch tables may use: everything below the batch loop.</summary>
    public const int Room = Size - CodeRoom;

    private readonly Tracee _owner;
    private ulong _address;
    private bool _unmapped;

    /// <summary>A page mapped on first use (MAP_SHARED, not executable: a frozen process only answers questions).</summary>
    public ScratchPage(Tracee owner) => _owner = owner;

    /// <summary>A page already mapped at <paramref name="address"/>, unmapped by <paramref name="owner"/>.</summary>
    public ScratchPage(Tracee owner, ulong address, bool loopWritten)
    {
        _owner = owner;
        _address = address;
        LoopWritten = loopWritten;
    }

    public int Top { get; set; }
    public int Free => Room - Top;
    public bool LoopWritten { get; set; }
    public bool IsMapped => _address != 0;
    public bool IsOwnedBy(Tracee tracee) => tracee == _owner;

    public ulong Address
    {
        get
        {
            if (_address != 0) return _address;
            // A thread that outlives its leader's release must not map a page that no one would unmap.
            if (_unmapped) throw new InvalidOperationException($"the scratch page of process {_owner.Pid} is gone (its owner was released)");
            // Shared, so that the kernel never merges it into a private anonymous area of the
            // process next to it: that area must read exactly as it was while it is saved.
            const long PROT_READ = 1, PROT_WRITE = 2, MAP_SHARED = 1, MAP_ANONYMOUS = 0x20;
            _address = (ulong)_owner.CheckedSyscall("mmap (scratch)", Syscalls.mmap, 0, Size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
            return _address;
        }
    }

    public ScratchRegion Allocate(int length)
    {
        if (length < 0 || length > Free)
            throw new InvalidOperationException($"the scratch page of process {_owner.Pid} has no room for {length} more bytes ({Free} free)");
        var region = new ScratchRegion(_owner.Pid, Address + (ulong)Top, length);
        Top = (Top + length + 7) & ~7;
        return region;
    }

    public void Unmapped()
    {
        _address = 0;
        _unmapped = true;
    }
}
