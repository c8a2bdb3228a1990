namespace CrCheckpoint.Engine.Native;

[StructLayout(LayoutKind.Sequential)]
public struct IoVec
{
    public nint Base;
    public nuint Length;
}

internal static partial class Interop
{
    [LibraryImport("libc", SetLastError = true)]
    public static unsafe partial nint process_vm_readv(int pid, IoVec* local, nuint liovcnt, IoVec* remote, nuint riovcnt, nuint flags);

    [LibraryImport("libc", SetLastError = true)]
    public static unsafe partial nint process_vm_writev(int pid, IoVec* local, nuint liovcnt, IoVec* remote, nuint riovcnt, nuint flags);
}
