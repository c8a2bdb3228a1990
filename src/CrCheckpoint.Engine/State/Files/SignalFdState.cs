using CrCheckpoint.Engine.Proc;
using System.Globalization;
using CrCheckpoint.Engine.Native;
using Microsoft.Win32.SafeHandles;

namespace CrCheckpoint.Engine.State.Files;

public static class SignalFdState
{
    private const int SFD_CLOEXEC = 0x80000, SFD_NONBLOCK = 0x800;

    public static SignalFdRecord Capture(FdInfo info) =>
        new() { Mask = ulong.Parse(info["sigmask"] ?? "0", NumberStyles.HexNumber, CultureInfo.InvariantCulture) };

    /// <summary>
    /// Made by the engine: a signalfd reads the pending signals of whichever process reads it, not
    /// of the one that made it, so it works the same once handed to the restarted process.
    /// </summary>
    public static unsafe SafeFileHandle Create(SignalFdRecord s, int openFlags)
    {
        var mask = s.Mask;
        var fd = (int)ErrnoCheck.Check(Interop.syscall(Syscalls.signalfd4, -1, (long)&mask, 8, SFD_CLOEXEC | (openFlags & SFD_NONBLOCK)), "signalfd4");
        return new SafeFileHandle(fd, ownsHandle: true);
    }
}
