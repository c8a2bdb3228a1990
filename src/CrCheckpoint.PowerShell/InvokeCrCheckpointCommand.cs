using System.Diagnostics;
using System.Management.Automation;
using CrCheckpoint.Engine.Checkpoint;
using CrCheckpoint.Engine.State.Memory;

namespace CrCheckpoint.PowerShell;

/// <summary>
/// <para type="synopsis">Checkpoints a running process into a context file (BLCR's cr_checkpoint).</para>
/// </summary>
[Cmdlet(VerbsLifecycle.Invoke, "CrCheckpoint", SupportsShouldProcess = true, DefaultParameterSetName = ById)]
[OutputType(typeof(CheckpointResult))]
public sealed class InvokeCrCheckpointCommand : AfterActionCmdlet
{
    private const string ById = "Id";
    private const string ByProcess = "InputObject";
    private readonly List<(int Id, object Target)> _targets = new();

    /// <summary>The process (or process group or session, with -Scope) to checkpoint.</summary>
    [Parameter(ParameterSetName = ById, Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("ProcessId", "PID")]
    public int[] Id { get; set; } = [];

    [Parameter(ParameterSetName = ByProcess, Mandatory = true, ValueFromPipeline = true)]
    public Process[] InputObject { get; set; } = [];

    /// <summary>--tree (default), --pid, --pgid, --sid.</summary>
    [Parameter]
    public CheckpointScope Scope { get; set; } = CheckpointScope.Tree;

    /// <summary>--file: the context file. Default: context.ID in the current location.</summary>
    [Parameter(Position = 1)]
    [Alias("File", "FilePath")]
    public string? Path { get; set; }

    /// <summary>--fd: write the context to this open file descriptor of the PowerShell process.</summary>
    [Parameter]
    public int? Fd { get; set; }

    /// <summary>--dir: one context.PID per process in this new directory.</summary>
    [Parameter]
    [Alias("Dir")]
    public string? Directory { get; set; }

    /// <summary>--atomic (the default): the file appears complete or not at all.</summary>
    [Parameter] public SwitchParameter Atomic { get; set; }
    /// <summary>--backup: keep an existing context file as FILE.~N~ (or -BackupPath).</summary>
    [Parameter] public SwitchParameter Backup { get; set; }
    /// <summary>--backup=NAME.</summary>
    [Parameter] public string? BackupPath { get; set; }
    /// <summary>--clobber: remove an existing file first and write in place.</summary>
    [Parameter] public SwitchParameter Clobber { get; set; }
    /// <summary>--noclobber: fail if the file exists.</summary>
    [Parameter] public SwitchParameter NoClobber { get; set; }
    /// <summary>--nosync: skip the fsync calls.</summary>
    [Parameter] public SwitchParameter NoSync { get; set; }

    /// <summary>--save-exe, --save-private, --save-shared, --save-all, --save-none, applied left to right.</summary>
    [Parameter]
    [ValidateSet("Exe", "Private", "Shared", "All", "None")]
    public string[] Save { get; set; } = [];
    [Parameter] public SwitchParameter SaveExe { get; set; }
    [Parameter] public SwitchParameter SavePrivate { get; set; }
    [Parameter] public SwitchParameter SaveShared { get; set; }
    [Parameter] public SwitchParameter SaveAll { get; set; }
    [Parameter] public SwitchParameter SaveNone { get; set; }

    /// <summary>--ptraced-error (default), --ptraced-skip, --ptraced-allow.</summary>
    [Parameter] public PtracedPolicy Ptraced { get; set; } = PtracedPolicy.Error;
    /// <summary>--ptracer-error (default), --ptracer-skip.</summary>
    [Parameter] public PtracerPolicy Ptracer { get; set; } = PtracerPolicy.Error;

    /// <summary>--kmsg-none, --kmsg-error (default), --kmsg-warning.</summary>
    [Parameter]
    [Alias("Kmsg")]
    public KernelMessages KernelMessages { get; set; } = KernelMessages.Error;

    /// <summary>
    /// Checkpoint even where some state cannot come back (connections waiting to be accepted,
    /// datagrams or inotify events waiting to be read); each loss is named in the result's Messages.
    /// Without it such a checkpoint is refused.
    /// </summary>
    [Parameter] public SwitchParameter AcceptLoss { get; set; }

    /// <summary>--time SEC: give up after this many seconds.</summary>
    [Parameter]
    [Alias("Time")]
    [ValidateRange(1, int.MaxValue)]
    public int? TimeoutSec { get; set; }

    protected override void ProcessRecord()
    {
        if (ParameterSetName == ByProcess)
            foreach (var p in InputObject) _targets.Add((p.Id, p));
        else
            foreach (var id in Id) _targets.Add((id, id));
    }

    protected override void EndProcessing()
    {
        var after = ChooseAfter(out var signal);
        var replace = ChooseReplace();
        var save = ChooseSave();
        if (_targets.Count > 1 && (Path is not null || Fd is not null || Directory is not null))
        {
            ThrowTerminatingError(new ErrorRecord(
                new ArgumentException($"{_targets.Count} processes were given but one {(Fd is not null ? "-Fd" : Directory is not null ? "-Directory" : "-Path")}: each process needs its own context file. Leave out -Path (each goes to context.PID in the current location) or checkpoint them one at a time."),
                "SeveralProcessesOneDestination", ErrorCategory.InvalidArgument, Path));
        }

        foreach (var (id, target) in _targets)
        {
            var destination = Fd is { } fd ? $"descriptor {fd}" : Path ?? $"context.{id}";
            if (!ShouldProcess($"process {id}", $"Checkpoint to {destination}{(after == AfterAction.Run ? "" : $" and then {after}")}"))
                continue;

            var request = new CheckpointRequest
            {
                Id = id,
                Scope = Scope,
                Path = Path is null ? null : SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path),
                Fd = Fd,
                Directory = Directory is null ? null : SessionState.Path.GetUnresolvedProviderPathFromPSPath(Directory),
                WorkingDirectory = SessionState.Path.CurrentFileSystemLocation.ProviderPath,
                Replace = replace,
                BackupPath = BackupPath is null ? null : SessionState.Path.GetUnresolvedProviderPathFromPSPath(BackupPath),
                Sync = !NoSync,
                After = after,
                Signal = signal,
                Save = save,
                Ptraced = Ptraced,
                Ptracer = Ptracer,
                AcceptLoss = AcceptLoss,
                Timeout = TimeoutSec is { } s ? TimeSpan.FromSeconds(s) : null,
            };

            try
            {
                var result = Checkpointer.Run(request);
                foreach (var m in result.Messages)
                {
                    WriteVerbose(m);
                    if (KernelMessages == KernelMessages.Warning) WriteWarning(m);
                }
                WriteObject(result);
            }
            catch (CheckpointException e)
            {
                if (KernelMessages != KernelMessages.None)
                    foreach (var m in e.Messages) WriteVerbose(m);
                WriteError(ErrorRecords.For(e, target, KernelMessages != KernelMessages.None));
            }
        }
    }

    private ReplacePolicy ChooseReplace()
    {
        var backup = Backup || BackupPath is not null;
        var chosen = new List<(string, ReplacePolicy)>();
        if (Atomic) chosen.Add(("-Atomic", ReplacePolicy.Atomic));
        if (backup) chosen.Add(("-Backup", ReplacePolicy.Backup));
        if (Clobber) chosen.Add(("-Clobber", ReplacePolicy.Clobber));
        if (NoClobber) chosen.Add(("-NoClobber", ReplacePolicy.NoClobber));
        if (chosen.Count > 1)
            ThrowTerminatingError(new ErrorRecord(
                new ArgumentException($"{string.Join(", ", chosen.Select(c => c.Item1))} were all given: choose one way to treat an existing context file."),
                "ConflictingReplacePolicy", ErrorCategory.InvalidArgument, null));
        return chosen.Count == 1 ? chosen[0].Item2 : ReplacePolicy.Atomic;
    }

    private SaveMappedFiles ChooseSave()
    {
        var save = SaveMappedFiles.None;
        // The switches cannot say in which order they were typed: they add up, and -SaveNone alone clears.
        IEnumerable<string> order = Save;
        if (SaveExe) order = order.Append("Exe");
        if (SavePrivate) order = order.Append("Private");
        if (SaveShared) order = order.Append("Shared");
        if (SaveAll) order = order.Append("All");
        if (SaveNone && !(SaveExe || SavePrivate || SaveShared || SaveAll)) order = order.Append("None");
        foreach (var item in order)
        {
            save = item switch
            {
                "Exe" => save | SaveMappedFiles.Executable,
                "Private" => save | SaveMappedFiles.Private,
                "Shared" => save | SaveMappedFiles.Shared,
                "All" => SaveMappedFiles.All,
                _ => SaveMappedFiles.None,
            };
        }
        return save;
    }
}

/// <summary>--kmsg-none, --kmsg-error, --kmsg-warning.</summary>
public enum KernelMessages { None, Error, Warning }
