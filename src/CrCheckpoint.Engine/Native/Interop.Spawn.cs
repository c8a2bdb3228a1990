namespace CrCheckpoint.Engine.Native;

internal static partial class Interop
{
    public const short POSIX_SPAWN_SETSIGDEF = 0x04, POSIX_SPAWN_SETSIGMASK = 0x08;

    // glibc's posix_spawnattr_t is 336 bytes and posix_spawn_file_actions_t 80; these are opaque
    // buffers generously sized so a future glibc cannot overrun them.
    public const int SpawnAttrSize = 1024, SpawnFileActionsSize = 1024, SigSetSize = 128;

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    public static unsafe partial int posix_spawn(int* pid, string path, void* fileActions, void* attr, nint* argv, nint* envp);

    [LibraryImport("libc")]
    public static unsafe partial int posix_spawnattr_init(void* attr);

    [LibraryImport("libc")]
    public static unsafe partial int posix_spawnattr_destroy(void* attr);

    [LibraryImport("libc")]
    public static unsafe partial int posix_spawnattr_setflags(void* attr, short flags);

    [LibraryImport("libc")]
    public static unsafe partial int posix_spawnattr_setsigmask(void* attr, void* sigset);

    [LibraryImport("libc")]
    public static unsafe partial int posix_spawnattr_setsigdefault(void* attr, void* sigset);

    [LibraryImport("libc")]
    public static unsafe partial int posix_spawn_file_actions_init(void* actions);

    [LibraryImport("libc")]
    public static unsafe partial int posix_spawn_file_actions_destroy(void* actions);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    public static unsafe partial int posix_spawn_file_actions_addopen(void* actions, int fd, string path, int flags, int mode);
}

internal static partial class Interop
{
    public const short POSIX_SPAWN_SETSID = 0x80;

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    public static unsafe partial int posix_spawn_file_actions_addchdir_np(void* actions, string path);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    public static unsafe partial int posix_spawnp(int* pid, string file, void* fileActions, void* attr, nint* argv, nint* envp);
}
