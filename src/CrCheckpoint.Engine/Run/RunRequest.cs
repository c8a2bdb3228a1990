namespace CrCheckpoint.Engine.Run;

/// <summary>What cr_run starts: a program, ready to be checkpointed whenever the user likes.</summary>
public sealed class RunRequest
{
    public required string FilePath { get; init; }
    public IReadOnlyList<string> Arguments { get; init; } = [];
    public string WorkingDirectory { get; init; } = System.Environment.CurrentDirectory;
    /// <summary>Files for descriptors 0, 1, 2; null means /dev/null (a job that outlives the session must not hold its terminal).</summary>
    public string? StandardInput { get; init; }
    public string? StandardOutput { get; init; }
    public string? StandardError { get; init; }
    public bool AppendOutput { get; init; }
    /// <summary>Start the program in a session of its own (the default), as a batch job would be.</summary>
    public bool NewSession { get; init; } = true;
    public IReadOnlyDictionary<string, string?> EnvironmentVariables { get; init; } = new Dictionary<string, string?>();
}
