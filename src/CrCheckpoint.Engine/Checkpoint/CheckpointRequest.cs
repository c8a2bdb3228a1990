using CrCheckpoint.Engine.State.Memory;

namespace CrCheckpoint.Engine.Checkpoint;

/// <summary>The man page's --tree, --pid, --pgid and --sid.</summary>
public enum CheckpointScope { Tree, Process, Group, Session }

/// <summary>What happens to the processes once a checkpoint or restart is done: the man page's --run, --stop, --term, --abort, --kill, --cont and --signal.</summary>
public enum AfterAction { Run, Stop, Term, Abort, Kill, Cont, Signal }

/// <summary>--atomic, --backup, --clobber, --noclobber.</summary>
public enum ReplacePolicy { Atomic, Backup, Clobber, NoClobber }

/// <summary>--ptraced-error, --ptraced-skip, --ptraced-allow.</summary>
public enum PtracedPolicy { Error, Skip, Allow }

/// <summary>--ptracer-error, --ptracer-skip.</summary>
public enum PtracerPolicy { Error, Skip }

public sealed class CheckpointRequest
{
    public int Id { get; init; }
    public CheckpointScope Scope { get; init; } = CheckpointScope.Tree;
    /// <summary>--file; null means context.ID in <see cref="WorkingDirectory"/> unless <see cref="Fd"/> is set.</summary>
    public string? Path { get; init; }
    /// <summary>--fd: write to this already open descriptor of the engine's process.</summary>
    public int? Fd { get; init; }
    /// <summary>--dir: one context.PID per process in this new directory.</summary>
    public string? Directory { get; init; }
    /// <summary>Where relative paths and the default context.ID go (the caller's current location).</summary>
    public string WorkingDirectory { get; init; } = Environment.CurrentDirectory;
    public ReplacePolicy Replace { get; init; } = ReplacePolicy.Atomic;
    /// <summary>--backup=NAME; null gives numbered backups (.~1~, .~2~...).</summary>
    public string? BackupPath { get; init; }
    public bool Sync { get; init; } = true;
    public AfterAction After { get; init; } = AfterAction.Run;
    /// <summary>The signal for <see cref="AfterAction.Signal"/>.</summary>
    public int Signal { get; init; }
    public SaveMappedFiles Save { get; init; } = SaveMappedFiles.None;
    public PtracedPolicy Ptraced { get; init; } = PtracedPolicy.Error;
    public PtracerPolicy Ptracer { get; init; } = PtracerPolicy.Error;
    /// <summary>Go on where some state cannot come back (connections waiting to be accepted...), naming each loss in the messages, instead of refusing.</summary>
    public bool AcceptLoss { get; init; }
    /// <summary>--time: give up (and leave the target as it was) after this long.</summary>
    public TimeSpan? Timeout { get; init; }
    /// <summary>Progress messages as they happen (--verbose).</summary>
    public Action<string>? Progress { get; init; }
}
