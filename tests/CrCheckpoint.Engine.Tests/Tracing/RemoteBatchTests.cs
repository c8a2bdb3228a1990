using System.Runtime.InteropServices;
using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Tracing;

namespace CrCheckpoint.Engine.Tests.Tracing;

/// <summary>What the batch loop finds in the scratch page, and the one rule for remote results.</summary>
public class RemoteBatchTests
{
    [Fact]
    public void TableThenDataWithPointersIntoIt()
    {
        var caps = new byte[12];
        caps[0] = 0xAA;
        var name = new byte[16];
        name[0] = (byte)'x';
        var batch = new RemoteBatch()
            .Add("capset", new RemoteCall(126, RemoteArg.Bytes(caps), RemoteArg.Bytes(caps, 8)))
            .AddUnchecked("prctl", new RemoteCall(157, 15, RemoteArg.Bytes(name), 3, 4, 5, -6));
        var image = new Tracee.BatchImage();
        foreach (var call in batch.Calls) Assert.True(image.TryAdd(call, int.MaxValue));
        // The same array twice is placed once; each piece of data is 8-byte aligned.
        Assert.Equal(16 + 16, image.DataBytes);

        const ulong At = 0x7f00_0000_0000;
        var bytes = image.Encode(batch.Calls, 0, batch.Count, At, out var tableBytes);
        Assert.Equal(3 * 64, tableBytes);
        Assert.Equal(tableBytes + 32, bytes.Length);
        var table = MemoryMarshal.Cast<byte, long>(bytes.AsSpan(0, tableBytes)).ToArray();
        const long Data = (long)At + 3 * 64;
        Assert.Equal([126L, Data, Data + 8, 0, 0, 0, 0], table[..7]);
        Assert.Equal([157L, 15, Data + 16, 3, 4, 5, -6], table[8..15]);
        Assert.Equal(-1, table[16]);
        Assert.Equal(0xAA, bytes[tableBytes]);
        Assert.Equal((byte)'x', bytes[tableBytes + 16]);
    }

    [Fact]
    public void DataBeyondTheRoomIsRefused()
    {
        var image = new Tracee.BatchImage();
        var call = new RemoteBatch().Add("setgroups", new RemoteCall(116, 2, RemoteArg.Bytes(new byte[100]))).Calls[0];
        Assert.False(image.TryAdd(call, 99));
        Assert.True(image.TryAdd(call, 104));
    }

    [Theory]
    [InlineData(0, false, 0)]
    [InlineData(42, false, 0)]
    [InlineData(-1, true, 1)]
    [InlineData(-17, true, 17)]
    [InlineData(-4095, true, 4095)]
    [InlineData(-4096, false, 0)]
    [InlineData(unchecked((long)0xffff_ffff_8000_0000), false, 0)]
    public void OneRuleForResults(long result, bool failed, int errno)
    {
        Assert.Equal(failed, RemoteResult.Failed(result, out var e));
        Assert.Equal(errno, (int)e);
        if (failed) Assert.Equal((Errno)errno, Assert.Throws<NativeException>(() => RemoteResult.Check(result, "call")).Errno);
        else Assert.Equal(result, RemoteResult.Check(result, "call"));
    }
}
