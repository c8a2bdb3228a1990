using CrCheckpoint.Engine.Checkpoint;

namespace CrCheckpoint.Engine.Restart;

public sealed class RestartRequest
{
    public required string Path { get; init; }
    /// <summary>cr_restart's default: the processes get their original ids back. False gives new ids.</summary>
    public bool RestorePid { get; init; } = true;
    /// <summary>--restore-pgid: put back the original process group instead of joining the caller's.</summary>
    public bool RestorePgid { get; init; }
    /// <summary>--restore-sid: put back the original session instead of joining the caller's.</summary>
    public bool RestoreSid { get => _restoreSid; init => _restoreSid = value; }
    private bool _restoreSid;

    /// <summary>This request, with the session restored as well (see StopState.SessionFor).</summary>
    internal RestartRequest WithOwnSession()
    {
        var copy = (RestartRequest)MemberwiseClone();
        copy._restoreSid = true;
        return copy;
    }
    public AfterAction After { get; init; } = AfterAction.Run;
    public int Signal { get; init; }
    /// <summary>--relocate OLD=NEW: path prefixes rewritten on whole components.</summary>
    public IReadOnlyDictionary<string, string> Relocate { get; init; } = new Dictionary<string, string>();
    /// <summary>
    /// Where descriptors 0, 1 and 2 go when what they pointed to (a pipe, a terminal that is gone)
    /// cannot be reopened: null means the caller's own descriptor, as cr_restart does; a path
    /// (/dev/null included) is opened instead.
    /// </summary>
    public string? StandardInput { get; init; }
    public string? StandardOutput { get; init; }
    public string? StandardError { get; init; }
    /// <summary>How long to wait for an original pid whose old owner is still being reaped.</summary>
    public TimeSpan PidWait { get; init; } = TimeSpan.FromSeconds(5);
    public Action<string>? Progress { get; init; }
}
