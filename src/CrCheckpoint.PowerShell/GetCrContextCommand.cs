using System.Management.Automation;
using CrCheckpoint.Engine.Format;
using CrCheckpoint.Engine.Image;

namespace CrCheckpoint.PowerShell;

/// <summary>
/// <para type="synopsis">Shows what a context file holds: processes, threads, memory regions, files and signal state.</para>
/// </summary>
[Cmdlet(VerbsCommon.Get, "CrContext", DefaultParameterSetName = "Path")]
[OutputType(typeof(ContextImage))]
public sealed class GetCrContextCommand : PSCmdlet
{
    [Parameter(ParameterSetName = "Path", Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    public string[] Path { get; set; } = [];

    [Parameter(ParameterSetName = "LiteralPath", Mandatory = true, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "FullName", "LP")]
    public string[] LiteralPath { get; set; } = [];

    /// <summary>Read every byte and check every checksum (otherwise page data is skipped over).</summary>
    [Parameter]
    public SwitchParameter Verify { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var file in Resolve())
        {
            try
            {
                WriteObject(ContextImage.Load(file, Verify));
            }
            catch (ContextFormatException e)
            {
                WriteError(ErrorRecords.For(e, file));
            }
            catch (FileNotFoundException e)
            {
                WriteError(new ErrorRecord(e, "Context.NotFound", ErrorCategory.ObjectNotFound, file));
            }
            catch (UnauthorizedAccessException e)
            {
                WriteError(new ErrorRecord(new UnauthorizedAccessException($"cannot read {file}: {e.Message}", e), "Context.PermissionDenied", ErrorCategory.PermissionDenied, file));
            }
            catch (IOException e)
            {
                WriteError(new ErrorRecord(new IOException($"cannot read {file}: {e.Message}", e), "Context.ReadError", ErrorCategory.ReadError, file));
            }
        }
    }

    private IEnumerable<string> Resolve()
    {
        if (ParameterSetName == "LiteralPath")
        {
            foreach (var p in LiteralPath) yield return SessionState.Path.GetUnresolvedProviderPathFromPSPath(p);
            yield break;
        }
        foreach (var p in Path)
        {
            List<string> resolved;
            try
            {
                resolved = GetResolvedProviderPathFromPSPath(p, out _).ToList();
            }
            catch (ItemNotFoundException e)
            {
                WriteError(new ErrorRecord(new FileNotFoundException($"there is no context file {p}.", e), "Context.NotFound", ErrorCategory.ObjectNotFound, p));
                continue;
            }
            foreach (var r in resolved) yield return r;
        }
    }
}
