using System.Diagnostics;
using System.Management.Automation;
using CrCheckpoint.Engine.Checkpoint;

namespace CrCheckpoint.PowerShell;

/// <summary>
/// <para type="synopsis">Tells, without touching them, whether processes can be checkpointed, and if not, why.</para>
/// </summary>
[Cmdlet(VerbsCommon.Get, "CrCheckpointable", DefaultParameterSetName = "Id")]
[OutputType(typeof(CheckpointabilityReport))]
public sealed class GetCrCheckpointableCommand : PSCmdlet
{
    [Parameter(ParameterSetName = "Id", Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("ProcessId", "PID")]
    public int[] Id { get; set; } = [];

    [Parameter(ParameterSetName = "InputObject", Mandatory = true, ValueFromPipeline = true)]
    public Process[] InputObject { get; set; } = [];

    [Parameter]
    public CheckpointScope Scope { get; set; } = CheckpointScope.Tree;

    protected override void ProcessRecord()
    {
        var ids = ParameterSetName == "InputObject" ? InputObject.Select(p => p.Id) : Id;
        foreach (var id in ids) WriteObject(Checkpointability.Check(id, Scope));
    }
}
