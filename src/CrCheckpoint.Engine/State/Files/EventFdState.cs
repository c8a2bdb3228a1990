using CrCheckpoint.Engine.Proc;
using System.Globalization;
using CrCheckpoint.Engine.Native;
using Microsoft.Win32.SafeHandles;

namespace CrCheckpoint.Engine.State.Files;

public static class EventFdState
{
    private const int EFD_SEMAPHORE = 1, EFD_CLOEXEC = 0x80000, EFD_NONBLOCK = 0x800;

    public static EventFdRecord Capture(FdInfo info) => new()
    {
        Count = ulong.Parse(info["eventfd-count"] ?? "0", NumberStyles.HexNumber, CultureInfo.InvariantCulture),
        Semaphore = info["eventfd-semaphore"] == "1",
    };

    /// <summary>A new eventfd with the saved counter, made by the engine and handed to the process.</summary>
    public static SafeFileHandle Create(EventFdRecord e, int openFlags)
    {
        // eventfd2 takes the initial count as an unsigned int; a larger count is written after.
        var initial = e.Count <= uint.MaxValue ? e.Count : 0;
        var fd = (int)ErrnoCheck.Check(Interop.syscall(Syscalls.eventfd2, (long)initial,
            EFD_CLOEXEC | (e.Semaphore ? EFD_SEMAPHORE : 0) | (openFlags & EFD_NONBLOCK)), "eventfd2");
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (initial != e.Count)
        {
            var count = e.Count;
            unsafe
            {
                if (Interop.write(fd, (byte*)&count, 8) != 8) throw new NativeException("setting an eventfd's counter", ErrnoCheck.LastErrno);
            }
        }
        return handle;
    }
}
