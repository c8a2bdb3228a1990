using System.IO.Hashing;
using CrCheckpoint.Engine.Format;

namespace CrCheckpoint.Engine.Tests.Format;

/// <summary>The format's checksum is System.IO.Hashing's XxHash3: the engine's own streaming version must give the same value for every length and every way of cutting the data.</summary>
public class ChecksumTests
{
    private static byte[] Data(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    [Fact]
    public void EveryLengthUpToFourBlocksInOnePiece()
    {
        var data = Data(4200, 1);
        var hash = new StreamingXxHash3();
        for (var length = 0; length <= data.Length; length++)
        {
            hash.Reset();
            hash.Append(data.AsSpan(0, length));
            Assert.True(XxHash3.HashToUInt64(data.AsSpan(0, length)) == hash.GetCurrentHashAsUInt64(), $"length {length}");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(63)]
    [InlineData(64)]
    [InlineData(65)]
    [InlineData(255)]
    [InlineData(256)]
    [InlineData(257)]
    [InlineData(1000)]
    [InlineData(1 << 20)]
    public void PiecesOfOneSizeGiveTheWholeHash(int piece)
    {
        var data = Data(3 << 20, 2);
        foreach (var length in new[] { 241, 1024, 1025, 4096, 65536 + 17, data.Length })
        {
            var hash = new StreamingXxHash3();
            for (var at = 0; at < length; at += piece) hash.Append(data.AsSpan(at, Math.Min(piece, length - at)));
            Assert.True(XxHash3.HashToUInt64(data.AsSpan(0, length)) == hash.GetCurrentHashAsUInt64(), $"length {length} in pieces of {piece}");
        }
    }

    [Fact]
    public void RandomPiecesAndARepeatedDigest()
    {
        var data = Data(1 << 20, 3);
        var random = new Random(4);
        var hash = new StreamingXxHash3();
        var at = 0;
        while (at < data.Length)
        {
            var piece = Math.Min(random.Next(0, 5000), data.Length - at);
            hash.Append(data.AsSpan(at, piece));
            at += piece;
            Assert.Equal(XxHash3.HashToUInt64(data.AsSpan(0, at)), hash.GetCurrentHashAsUInt64());
        }
    }
}
