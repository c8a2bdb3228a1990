using CrCheckpoint.Engine.Native;

namespace CrCheckpoint.Engine.Tracing;

/// <summary>
/// The one reading of what a remote call returned: the kernel's own rule (IS_ERR_VALUE), a value
/// from -4095 to -1 is a negated errno; anything else, an mmap address above 2^63 included, is a result.
/// </summary>
public static class RemoteResult
{
    /// <summary>True when <paramref name="result"/> is a failure, with its errno.</summary>
    public static bool Failed(long result, out Errno errno)
    {
        errno = result is < 0 and > -4096 ? (Errno)(int)-result : 0;
        return errno != 0;
    }

    /// <summary>The result, or a <see cref="NativeException"/> naming <paramref name="what"/> for a failure.</summary>
    public static long Check(long result, string what) =>
        Failed(result, out var errno) ? throw new NativeException(what, (int)errno) : result;
}
