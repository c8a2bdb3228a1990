using System.Management.Automation;
using CrCheckpoint.Engine.Checkpoint;

namespace CrCheckpoint.PowerShell;

/// <summary>
/// The man page's signal choices, shared by checkpoint and restart: -Run (default), -Stop, -Term,
/// -Abort, -Kill, -Cont or -Signal N. PowerShell cannot tell the order switches were typed in, so
/// instead of "the last one wins" two choices are an error.
/// </summary>
public abstract class AfterActionCmdlet : PSCmdlet
{
    /// <summary>--run (default): let the process go on.</summary>
    [Parameter] public SwitchParameter Run { get; set; }
    [Parameter] public SwitchParameter Stop { get; set; }
    [Parameter] public SwitchParameter Term { get; set; }
    [Parameter] public SwitchParameter Abort { get; set; }
    [Parameter] public SwitchParameter Kill { get; set; }
    [Parameter] public SwitchParameter Cont { get; set; }
    /// <summary>--signal NUM.</summary>
    [Parameter]
    [ValidateRange(1, 64)]
    public int? Signal { get; set; }

    protected AfterAction ChooseAfter(out int signal)
    {
        var chosen = new List<(string Name, AfterAction After, int Signal)>();
        if (Run) chosen.Add(("-Run", AfterAction.Run, 0));
        if (Stop) chosen.Add(("-Stop", AfterAction.Stop, 0));
        if (Term) chosen.Add(("-Term", AfterAction.Term, 0));
        if (Abort) chosen.Add(("-Abort", AfterAction.Abort, 0));
        if (Kill) chosen.Add(("-Kill", AfterAction.Kill, 0));
        if (Cont) chosen.Add(("-Cont", AfterAction.Cont, 0));
        if (Signal is { } n) chosen.Add(("-Signal", AfterAction.Signal, n));
        if (chosen.Count > 1)
            ThrowTerminatingError(new ErrorRecord(
                new ArgumentException($"{string.Join(", ", chosen.Select(c => c.Name))} were all given: choose one thing to do with the processes."),
                "ConflictingAfterAction", ErrorCategory.InvalidArgument, null));
        signal = chosen.Count == 1 ? chosen[0].Signal : 0;
        return chosen.Count == 1 ? chosen[0].After : AfterAction.Run;
    }
}
