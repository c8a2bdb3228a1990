namespace CrCheckpoint.Engine.State.Credentials;

/// <summary>
/// User and group ids, capability sets and securebits. Credentials belong to each thread: the
/// Process record holds the main thread's, and a Thread record holds its own only where they differ.
/// </summary>
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
    /// <summary>prctl(PR_GET_SECUREBITS); since 1.2 (absent: 0).</summary>
    public int Securebits { get; init; }

    public static CredentialsRecord Capture(Proc.ProcStatus status, int securebits = 0) => new()
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
        Securebits = securebits,
    };

    /// <summary>Same ids, groups, capabilities and securebits (no_new_privs and seccomp belong to the thread's sandbox record).</summary>
    public bool SameAs(CredentialsRecord o) =>
        Uids.AsSpan().SequenceEqual(o.Uids) && Gids.AsSpan().SequenceEqual(o.Gids) && Groups.AsSpan().SequenceEqual(o.Groups) &&
        CapInheritable == o.CapInheritable && CapPermitted == o.CapPermitted && CapEffective == o.CapEffective &&
        CapBounding == o.CapBounding && CapAmbient == o.CapAmbient && Securebits == o.Securebits;
}
