using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace CrCheckpoint.Engine.Format;

/// <summary>
/// XXH3-64 (seed 0) of data that arrives in pieces: the same value as System.IO.Hashing's
/// <see cref="XxHash3"/> for the same bytes, which is the format's record checksum. Ours because of
/// when it gets fast: the library's streaming loop starts out precompiled for a baseline CPU (about
/// 1.3 GB/s here) and is recompiled optimized only after its calls have been counted, which a busy
/// pwsh keeps postponing, so every small checkpoint hashed at that speed. These loops are compiled
/// optimized, with AVX2 where the CPU has it, on their first call.
/// </summary>
public sealed class StreamingXxHash3
{
    private const int StripeLength = 64, StripesPerBlock = 16, BufferLength = 256, MidSizeMax = 240;
    private const int ScrambleSecretAt = 128, LastStripeSecretAt = 121, MergeSecretAt = 11;
    private const ulong Prime32_1 = 0x9E3779B1, Prime32_2 = 0x85EBCA77, Prime32_3 = 0xC2B2AE3D;
    private const ulong Prime64_1 = 0x9E3779B185EBCA87, Prime64_2 = 0xC2B2AE3D27D4EB4F, Prime64_3 = 0x165667B19E3779F9;
    private const ulong Prime64_4 = 0x85EBCA77C2B2AE63, Prime64_5 = 0x27D4EB2F165667C5;

    private static ReadOnlySpan<byte> Secret =>
    [
        0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
        0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
        0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
        0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
        0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
        0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
        0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
        0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
        0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
        0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
        0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
        0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
    ];

    private readonly ulong[] _acc = new ulong[8];
    // The bytes not accumulated yet: a stripe is accumulated only once more data follows it, for the
    // stripe that ends the input is hashed differently.
    private readonly byte[] _buffer = new byte[BufferLength];
    private readonly byte[] _lastStripe = new byte[StripeLength];
    private int _buffered;
    private int _stripesInBlock;
    private long _length;

    public StreamingXxHash3() => Reset();

    public void Reset()
    {
        _acc[0] = Prime32_3; _acc[1] = Prime64_1; _acc[2] = Prime64_2; _acc[3] = Prime64_3;
        _acc[4] = Prime64_4; _acc[5] = Prime32_2; _acc[6] = Prime64_5; _acc[7] = Prime32_1;
        _buffered = 0;
        _stripesInBlock = 0;
        _length = 0;
    }

    public void Append(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) return;
        _length += data.Length;
        RememberLastStripe(data);
        if (_buffered + data.Length <= BufferLength)
        {
            data.CopyTo(_buffer.AsSpan(_buffered));
            _buffered += data.Length;
            return;
        }
        if (_buffered > 0)
        {
            // More data follows: the buffer's stripes can all go.
            var fill = BufferLength - _buffered;
            data[..fill].CopyTo(_buffer.AsSpan(_buffered));
            data = data[fill..];
            Stripes(_buffer, BufferLength / StripeLength);
            _buffered = 0;
        }
        var stripes = (data.Length - 1) / StripeLength;
        Stripes(data, stripes);
        data = data[(stripes * StripeLength)..];
        data.CopyTo(_buffer);
        _buffered = data.Length;
    }

    public ulong GetCurrentHashAsUInt64()
    {
        if (_length <= MidSizeMax) return XxHash3.HashToUInt64(_buffer.AsSpan(0, (int)_length));
        Span<ulong> acc = stackalloc ulong[8];
        _acc.CopyTo(acc);
        var stripesInBlock = _stripesInBlock;
        Accumulate(acc, _buffer, (_buffered - 1) / StripeLength, ref stripesInBlock);
        Accumulate512(acc, _lastStripe, Secret[LastStripeSecretAt..]);
        var result = unchecked((ulong)_length * Prime64_1);
        for (var i = 0; i < 4; i++)
            result = unchecked(result + Mul128Fold64(
                acc[2 * i] ^ BinaryPrimitives.ReadUInt64LittleEndian(Secret[(MergeSecretAt + 16 * i)..]),
                acc[2 * i + 1] ^ BinaryPrimitives.ReadUInt64LittleEndian(Secret[(MergeSecretAt + 16 * i + 8)..])));
        return Avalanche(result);
    }

    private void RememberLastStripe(ReadOnlySpan<byte> data)
    {
        if (data.Length >= StripeLength)
        {
            data[^StripeLength..].CopyTo(_lastStripe);
            return;
        }
        _lastStripe.AsSpan(data.Length).CopyTo(_lastStripe);
        data.CopyTo(_lastStripe.AsSpan(StripeLength - data.Length));
    }

    private void Stripes(ReadOnlySpan<byte> data, int count) => Accumulate(_acc, data, count, ref _stripesInBlock);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Accumulate(Span<ulong> acc, ReadOnlySpan<byte> data, int stripes, ref int stripesInBlock)
    {
        var secret = Secret;
        for (var s = 0; s < stripes; s++)
        {
            Accumulate512(acc, data.Slice(s * StripeLength, StripeLength), secret[(stripesInBlock * 8)..]);
            if (++stripesInBlock == StripesPerBlock)
            {
                Scramble(acc, secret[ScrambleSecretAt..]);
                stripesInBlock = 0;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Accumulate512(Span<ulong> acc, ReadOnlySpan<byte> stripe, ReadOnlySpan<byte> secret)
    {
        if (Avx2.IsSupported)
        {
            ref var a = ref Unsafe.As<ulong, byte>(ref acc[0]);
            for (var half = 0; half < 64; half += 32)
            {
                var data = Vector256.LoadUnsafe(ref MemoryMarshal.GetReference(stripe), (nuint)half).AsUInt64();
                var key = data ^ Vector256.LoadUnsafe(ref MemoryMarshal.GetReference(secret), (nuint)half).AsUInt64();
                var product = Avx2.Multiply(key.AsUInt32(), Avx2.ShiftRightLogical(key, 32).AsUInt32());
                var swapped = Avx2.Shuffle(data.AsUInt32(), 0b01_00_11_10).AsUInt64();
                ref var lane = ref Unsafe.As<byte, Vector256<ulong>>(ref Unsafe.Add(ref a, half));
                lane = lane + swapped + product;
            }
            return;
        }
        for (var i = 0; i < 8; i++)
        {
            var value = BinaryPrimitives.ReadUInt64LittleEndian(stripe[(8 * i)..]);
            var key = value ^ BinaryPrimitives.ReadUInt64LittleEndian(secret[(8 * i)..]);
            acc[i ^ 1] = unchecked(acc[i ^ 1] + value);
            acc[i] = unchecked(acc[i] + (ulong)(uint)key * (key >> 32));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scramble(Span<ulong> acc, ReadOnlySpan<byte> secret)
    {
        for (var i = 0; i < 8; i++)
        {
            var a = acc[i];
            a ^= a >> 47;
            a ^= BinaryPrimitives.ReadUInt64LittleEndian(secret[(8 * i)..]);
            acc[i] = unchecked(a * Prime32_1);
        }
    }

    private static ulong Mul128Fold64(ulong a, ulong b)
    {
        var high = Math.BigMul(a, b, out var low);
        return high ^ low;
    }

    private static ulong Avalanche(ulong h)
    {
        h ^= h >> 37;
        h = unchecked(h * 0x165667919E3779F9);
        return h ^ (h >> 32);
    }
}
