namespace CrCheckpoint.Engine.Native;

/// <summary>Where a spawned program's descriptors 0, 1 and 2 come from.</summary>
public sealed record SpawnStreams(string Input, string Output, string Error, int OutputFlags = Interop.O_WRONLY);

/// <summary>
/// posix_spawn with a clean signal state (empty mask, every signal at its default): never
/// System.Diagnostics.Process, whose children the .NET runtime reaps itself, and no fork in the host.
/// </summary>
internal static unsafe class ProcessSpawner
{
    public static int Spawn(string file, IReadOnlyList<string> argv, IReadOnlyList<string> envp, SpawnStreams streams,
        string? workingDirectory = null, bool newSession = false)
    {
        var attr = NativeMemory.AllocZeroed(Interop.SpawnAttrSize);
        var actions = NativeMemory.AllocZeroed(Interop.SpawnFileActionsSize);
        var sigset = (byte*)NativeMemory.AllocZeroed(Interop.SigSetSize);
        var argvPtrs = (nint*)NativeMemory.AllocZeroed((nuint)((argv.Count + 1) * sizeof(nint)));
        var envPtrs = (nint*)NativeMemory.AllocZeroed((nuint)((envp.Count + 1) * sizeof(nint)));
        try
        {
            Interop.posix_spawnattr_init(attr);
            Interop.posix_spawnattr_setsigmask(attr, sigset);
            new Span<byte>(sigset, Interop.SigSetSize).Fill(0xff);
            Interop.posix_spawnattr_setsigdefault(attr, sigset);
            Interop.posix_spawnattr_setflags(attr, (short)(Interop.POSIX_SPAWN_SETSIGMASK | Interop.POSIX_SPAWN_SETSIGDEF |
                (newSession ? Interop.POSIX_SPAWN_SETSID : 0)));
            Interop.posix_spawn_file_actions_init(actions);
            Interop.posix_spawn_file_actions_addopen(actions, 0, streams.Input, Interop.O_RDONLY, 0);
            Interop.posix_spawn_file_actions_addopen(actions, 1, streams.Output, streams.OutputFlags, 0x1a4);
            Interop.posix_spawn_file_actions_addopen(actions, 2, streams.Error, streams.OutputFlags, 0x1a4);
            if (workingDirectory is not null) Interop.posix_spawn_file_actions_addchdir_np(actions, workingDirectory);

            for (var i = 0; i < argv.Count; i++) argvPtrs[i] = Marshal.StringToCoTaskMemUTF8(argv[i]);
            for (var i = 0; i < envp.Count; i++) envPtrs[i] = Marshal.StringToCoTaskMemUTF8(envp[i]);
            int pid;
            var err = file.Contains('/')
                ? Interop.posix_spawn(&pid, file, actions, attr, argvPtrs, envPtrs)
                : Interop.posix_spawnp(&pid, file, actions, attr, argvPtrs, envPtrs);
            if (err != 0) throw new NativeException($"starting {file}", err);
            return pid;
        }
        finally
        {
            Interop.posix_spawn_file_actions_destroy(actions);
            Interop.posix_spawnattr_destroy(attr);
            for (var i = 0; i < argv.Count; i++) Marshal.FreeCoTaskMem(argvPtrs[i]);
            for (var i = 0; i < envp.Count; i++) Marshal.FreeCoTaskMem(envPtrs[i]);
            NativeMemory.Free(argvPtrs);
            NativeMemory.Free(envPtrs);
            NativeMemory.Free(attr);
            NativeMemory.Free(actions);
            NativeMemory.Free(sigset);
        }
    }
}
