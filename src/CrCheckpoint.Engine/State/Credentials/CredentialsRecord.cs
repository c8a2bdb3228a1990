namespace CrCheckpoint.Engine.State.Credentials;

/// <summary>User and group ids and capability sets, from /proc/PID/status.</summary>
public sealed class CredentialsRecord
{
    /// <summary>Real, effective, saved set and filesystem user ids.</summary>
    public uint[] Uids { get; init; } = [];
    public uint[] Gids { get; init; } = [];
    public uint[] Groups { get; init; } = [];
    public ulong CapInheritable { get; init; }
    public ulong CapPermitted { get; init; }
    public ulong CapEffective { get; init; }
    public ulong CapBounding { get; init; }
    public ulong CapAmbient { get; init; }
    public bool NoNewPrivileges { get; init; }
    /// <summary>0 none, 1 strict, 2 filter (as the Seccomp: line of /proc/PID/status).</summary>
    public int SeccompMode { get; init; }

    public static CredentialsRecord Capture(Proc.ProcStatus status) => new()
    {
        Uids = status.Ids("Uid"),
        Gids = status.Ids("Gid"),
        Groups = status.Groups,
        CapInheritable = status.Mask("CapInh"),
        CapPermitted = status.Mask("CapPrm"),
        CapEffective = status.Mask("CapEff"),
        CapBounding = status.Mask("CapBnd"),
        CapAmbient = status.Mask("CapAmb"),
        NoNewPrivileges = status["NoNewPrivs"] == "1",
        SeccompMode = int.TryParse(status["Seccomp"], out var s) ? s : 0,
    };
}
