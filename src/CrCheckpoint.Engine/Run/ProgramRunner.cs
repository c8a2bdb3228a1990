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
        var output = O_WRONLY | O_CREAT | (request.AppendOutput ? O_APPEND : O_TRUNC);
        var environment = System.Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .ToDictionary(e => (string)e.Key, e => (string?)e.Value);
        foreach (var (k, v) in request.EnvironmentVariables) environment[k] = v;
        int pid;
        try
        {
            // /dev/null opened O_WRONLY|O_CREAT|O_TRUNC is still /dev/null.
            pid = ProcessSpawner.Spawn(request.FilePath, [request.FilePath, .. request.Arguments],
                environment.Where(e => e.Value is not null).Select(e => $"{e.Key}={e.Value}").ToArray(),
                new SpawnStreams(request.StandardInput ?? "/dev/null", request.StandardOutput ?? "/dev/null",
                    request.StandardError ?? "/dev/null", output),
                request.WorkingDirectory, request.NewSession);
        }
        catch (NativeException e)
        {
            throw new FileNotFoundException($"cannot start {request.FilePath}: {Marshal.GetPInvokeErrorMessage((int)e.Errno)}.", request.FilePath, e);
        }
        return new RunResult(pid, request.FilePath, request.Arguments.ToArray(), new ChildWatcher(pid));
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
