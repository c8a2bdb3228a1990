using System.Collections;
using System.Management.Automation;
using CrCheckpoint.Engine.Restart;

namespace CrCheckpoint.PowerShell;

/// <summary>
/// <para type="synopsis">Restarts the processes saved in a context file (BLCR's cr_restart).</para>
/// </summary>
[Cmdlet(VerbsLifecycle.Invoke, "CrRestart", SupportsShouldProcess = true)]
[OutputType(typeof(RestartResult))]
public sealed class InvokeCrRestartCommand : AfterActionCmdlet
{
    private readonly CancellationTokenSource _cancel = new();

    /// <summary>The context file (a CheckpointResult piped in binds by its Path).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName", "File", "FilePath")]
    public string Path { get; set; } = "";

    /// <summary>Give the processes new ids instead of their original ones.</summary>
    [Parameter] public SwitchParameter NoRestorePid { get; set; }
    /// <summary>--restore-pgid: back into the original process group instead of the caller's.</summary>
    [Parameter] public SwitchParameter RestorePgid { get; set; }
    /// <summary>--restore-sid: back into the original session instead of the caller's.</summary>
    [Parameter] public SwitchParameter RestoreSid { get; set; }

    /// <summary>--relocate: @{ '/old/prefix' = '/new/prefix' }, on whole path components.</summary>
    [Parameter] public Hashtable? Relocate { get; set; }

    /// <summary>Where descriptor 0 goes if its pipe or terminal is gone (default: this session's standard input).</summary>
    [Parameter] public string? StandardInput { get; set; }
    [Parameter] public string? StandardOutput { get; set; }
    [Parameter] public string? StandardError { get; set; }

    /// <summary>Wait for the restarted processes to end, as cr_restart does, and report how they ended.</summary>
    [Parameter] public SwitchParameter Wait { get; set; }

    protected override void ProcessRecord()
    {
        var after = ChooseAfter(out var signal);
        var path = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
        if (!ShouldProcess(path, "Restart the processes saved in this context file")) return;

        var relocate = new Dictionary<string, string>();
        if (Relocate is not null)
            foreach (DictionaryEntry e in Relocate) relocate[e.Key.ToString()!] = e.Value?.ToString() ?? "";

        var request = new RestartRequest
        {
            Path = path,
            RestorePid = !NoRestorePid,
            RestorePgid = RestorePgid,
            RestoreSid = RestoreSid,
            After = after,
            Signal = signal,
            Relocate = relocate,
            StandardInput = Resolve(StandardInput),
            StandardOutput = Resolve(StandardOutput),
            StandardError = Resolve(StandardError),
        };

        RestartResult result;
        try
        {
            result = Restarter.Run(request);
        }
        catch (RestartException e)
        {
            foreach (var m in e.Messages) WriteVerbose(m);
            WriteError(ErrorRecords.For(e));
            return;
        }
        foreach (var m in result.Messages) WriteVerbose(m);
        if (Wait)
        {
            try { result.WaitForExit(_cancel.Token); }
            catch (OperationCanceledException) { }
        }
        WriteObject(result);
    }

    protected override void StopProcessing() => _cancel.Cancel();

    private string? Resolve(string? path) => path is null ? null : SessionState.Path.GetUnresolvedProviderPathFromPSPath(path);
}
