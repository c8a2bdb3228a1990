using System.Collections;
using System.Management.Automation;
using CrCheckpoint.Engine.Run;

namespace CrCheckpoint.PowerShell;

/// <summary>
/// <para type="synopsis">Starts a program ready to be checkpointed (BLCR's cr_run).</para>
/// <para type="description">Nothing is preloaded: any program can be checkpointed. What this adds over
/// Start-Process is the way the program is started: not as a .NET child (the .NET runtime waits for
/// those and would take the kernel's notifications from the checkpoint), by default in a session of
/// its own with /dev/null as standard streams, and watched so that it is reaped when it ends.</para>
/// </summary>
[Cmdlet(VerbsLifecycle.Start, "CrProcess", SupportsShouldProcess = true)]
[Alias("cr_run")]
[OutputType(typeof(RunResult))]
public sealed class StartCrProcessCommand : PSCmdlet
{
    private readonly CancellationTokenSource _cancel = new();

    [Parameter(Mandatory = true, Position = 0)]
    [Alias("Path", "Program")]
    public string FilePath { get; set; } = "";

    [Parameter(Position = 1, ValueFromRemainingArguments = true)]
    [Alias("Args")]
    public string[] ArgumentList { get; set; } = [];

    [Parameter] public string? WorkingDirectory { get; set; }
    [Parameter] public string? StandardInput { get; set; }
    [Parameter] public string? StandardOutput { get; set; }
    [Parameter] public string? StandardError { get; set; }
    /// <summary>Append to the output files instead of truncating them.</summary>
    [Parameter] public SwitchParameter Append { get; set; }
    /// <summary>Stay in this session and process group instead of starting a new session.</summary>
    [Parameter] public SwitchParameter NoNewSession { get; set; }
    /// <summary>Extra environment variables (a $null value removes one).</summary>
    [Parameter] public Hashtable? Environment { get; set; }
    /// <summary>Wait for the program to end and report its exit code or signal.</summary>
    [Parameter] public SwitchParameter Wait { get; set; }

    protected override void ProcessRecord()
    {
        if (!ShouldProcess(FilePath, "Start")) return;
        var variables = new Dictionary<string, string?>();
        if (Environment is not null)
            foreach (DictionaryEntry e in Environment) variables[e.Key.ToString()!] = e.Value?.ToString();
        var program = FilePath.Contains('/') ? SessionState.Path.GetUnresolvedProviderPathFromPSPath(FilePath) : FilePath;
        try
        {
            var result = ProgramRunner.Start(new RunRequest
            {
                FilePath = program,
                Arguments = ArgumentList,
                WorkingDirectory = Resolve(WorkingDirectory) ?? SessionState.Path.CurrentFileSystemLocation.ProviderPath,
                StandardInput = Resolve(StandardInput),
                StandardOutput = Resolve(StandardOutput),
                StandardError = Resolve(StandardError),
                AppendOutput = Append,
                NewSession = !NoNewSession,
                EnvironmentVariables = variables,
            });
            if (Wait)
            {
                try { result.WaitForExit(_cancel.Token); }
                catch (OperationCanceledException) { }
            }
            WriteObject(result);
        }
        catch (FileNotFoundException e)
        {
            WriteError(new ErrorRecord(e, "Run.CannotStart", ErrorCategory.ObjectNotFound, FilePath));
        }
    }

    protected override void StopProcessing() => _cancel.Cancel();

    private string? Resolve(string? path) => path is null ? null : SessionState.Path.GetUnresolvedProviderPathFromPSPath(path);
}
