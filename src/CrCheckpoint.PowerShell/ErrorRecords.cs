using System.Management.Automation;
using CrCheckpoint.Engine.Checkpoint;
using CrCheckpoint.Engine.Format;
using CrCheckpoint.Engine.Restart;

namespace CrCheckpoint.PowerShell;

/// <summary>Engine failures as ErrorRecords with a fitting category, id and target.</summary>
internal static class ErrorRecords
{
    public static ErrorRecord For(CheckpointException e, object? target, bool withMessages)
    {
        var category = e.Failure switch
        {
            CheckpointFailure.ProcessNotFound => ErrorCategory.ObjectNotFound,
            CheckpointFailure.PermissionDenied => ErrorCategory.PermissionDenied,
            CheckpointFailure.Unsupported => ErrorCategory.NotImplemented,
            CheckpointFailure.InvalidRequest => ErrorCategory.InvalidArgument,
            CheckpointFailure.DestinationExists => ErrorCategory.ResourceExists,
            CheckpointFailure.DestinationFailed => ErrorCategory.WriteError,
            CheckpointFailure.TimedOut => ErrorCategory.OperationTimeout,
            CheckpointFailure.ProcessExited => ErrorCategory.ResourceUnavailable,
            _ => ErrorCategory.InvalidOperation,
        };
        var record = new ErrorRecord(e, $"Checkpoint.{e.Failure}", category, target);
        if (withMessages && e.Messages.Count > 0)
            record.ErrorDetails = new ErrorDetails(e.Message) { RecommendedAction = string.Join(Environment.NewLine, e.Messages) };
        return record;
    }

    public static ErrorRecord For(RestartException e)
    {
        var category = e.Failure switch
        {
            RestartFailure.ContextNotFound => ErrorCategory.ObjectNotFound,
            RestartFailure.ContextInvalid => ErrorCategory.InvalidData,
            RestartFailure.PidInUse or RestartFailure.FileInUse => ErrorCategory.ResourceExists,
            RestartFailure.FileMissing => ErrorCategory.ObjectNotFound,
            RestartFailure.FileChanged => ErrorCategory.InvalidData,
            RestartFailure.Unsupported => ErrorCategory.NotImplemented,
            RestartFailure.PermissionDenied => ErrorCategory.PermissionDenied,
            RestartFailure.Mismatch => ErrorCategory.InvalidResult,
            _ => ErrorCategory.InvalidOperation,
        };
        return new ErrorRecord(e, $"Restart.{e.Failure}", category, e.Target);
    }

    public static ErrorRecord For(ContextFormatException e, string path) =>
        new(e, $"Context.{e.Error}", ErrorCategory.InvalidData, path);
}
