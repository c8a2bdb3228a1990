using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Restart;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.Run;

/// <summary>
/// BLCR's cr_run: starts a program so that it can be checkpointed later. No library is preloaded
/// (the engine needs none); what matters is how the program is started: with posix_spawn rather
/// than System.Diagnostics.Process, because the .NET runtime waits for the children it starts and
/// would take the kernel's ptrace notifications from the engine. The engine watches the program
/// itself and reaps it when it ends.
/// </summary>
public static unsafe class ProgramRunner
{
    public static RunResult Start(RunRequest request)
    {
        var attr = NativeMemory.AllocZeroed(SpawnAttrSize);
        var actions = NativeMemory.AllocZeroed(SpawnFileActionsSize);
        var sigset = (byte*)NativeMemory.AllocZeroed(SigSetSize);
        var strings = new List<nint>();
        try
        {
            posix_spawnattr_init(attr);
            posix_spawnattr_setsigmask(attr, sigset);
            new Span<byte>(sigset, SigSetSize).Fill(0xff);
            posix_spawnattr_setsigdefault(attr, sigset);
            var flags = (short)(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (request.NewSession ? POSIX_SPAWN_SETSID : 0));
            posix_spawnattr_setflags(attr, flags);
            posix_spawn_file_actions_init(actions);
            var output = O_WRONLY | O_CREAT | (request.AppendOutput ? O_APPEND : O_TRUNC);
            posix_spawn_file_actions_addopen(actions, 0, request.StandardInput ?? "/dev/null", O_RDONLY, 0);
            posix_spawn_file_actions_addopen(actions, 1, request.StandardOutput ?? "/dev/null", request.StandardOutput is null ? O_WRONLY : output, 0x1a4);
            posix_spawn_file_actions_addopen(actions, 2, request.StandardError ?? "/dev/null", request.StandardError is null ? O_WRONLY : output, 0x1a4);
            posix_spawn_file_actions_addchdir_np(actions, request.WorkingDirectory);

            var argv = new[] { request.FilePath }.Concat(request.Arguments).ToArray();
            var environment = System.Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
                .ToDictionary(e => (string)e.Key, e => (string?)e.Value);
            foreach (var (k, v) in request.EnvironmentVariables) environment[k] = v;
            var envp = environment.Where(e => e.Value is not null).Select(e => $"{e.Key}={e.Value}").ToArray();

            var argvPtrs = (nint*)NativeMemory.AllocZeroed((nuint)((argv.Length + 1) * sizeof(nint)));
            var envPtrs = (nint*)NativeMemory.AllocZeroed((nuint)((envp.Length + 1) * sizeof(nint)));
            try
            {
                for (var i = 0; i < argv.Length; i++) strings.Add(argvPtrs[i] = Marshal.StringToCoTaskMemUTF8(argv[i]));
                for (var i = 0; i < envp.Length; i++) strings.Add(envPtrs[i] = Marshal.StringToCoTaskMemUTF8(envp[i]));
                int pid;
                var err = request.FilePath.Contains('/')
                    ? posix_spawn(&pid, request.FilePath, actions, attr, argvPtrs, envPtrs)
                    : posix_spawnp(&pid, request.FilePath, actions, attr, argvPtrs, envPtrs);
                if (err != 0)
                    throw new FileNotFoundException($"cannot start {request.FilePath}: {Marshal.GetPInvokeErrorMessage(err)}.", request.FilePath);
                var watcher = new ChildWatcher(pid);
                return new RunResult(pid, request.FilePath, request.Arguments.ToArray(), watcher);
            }
            finally
            {
                NativeMemory.Free(argvPtrs);
                NativeMemory.Free(envPtrs);
            }
        }
        finally
        {
            posix_spawn_file_actions_destroy(actions);
            posix_spawnattr_destroy(attr);
            NativeMemory.Free(attr);
            NativeMemory.Free(actions);
            NativeMemory.Free(sigset);
            foreach (var s in strings) Marshal.FreeCoTaskMem(s);
        }
    }
}

/// <summary>A program started by <see cref="ProgramRunner"/>: its id (which pipes into Invoke-CrCheckpoint) and how it ended.</summary>
public sealed class RunResult
{
    private readonly ChildWatcher _watcher;

    internal RunResult(int id, string path, string[] arguments, ChildWatcher watcher)
    {
        Id = id;
        Path = path;
        Arguments = arguments;
        _watcher = watcher;
    }

    public int Id { get; }
    public string Path { get; }
    public string[] Arguments { get; }
    public int? ExitCode { get; private set; }
    public string? ExitSignal { get; private set; }

    public ProcessExit WaitForExit(CancellationToken cancel = default)
    {
        var exit = _watcher.WaitForExit(cancel);
        ExitCode = exit.ExitCode;
        ExitSignal = exit.Signal is { } s ? Signals.Name(s) : null;
        return exit;
    }
}
