namespace CrCheckpoint.Engine.State.Signals;

/// <summary>Process-wide signal state: dispositions and the shared pending queue.</summary>
public sealed class SignalStateRecord
{
    /// <summary>Only signals whose disposition is not the default are listed.</summary>
    public List<SignalDispositionRecord> Dispositions { get; init; } = [];
    /// <summary>siginfo_t (128 bytes) of each signal queued for the whole process, oldest first.</summary>
    public List<byte[]> SharedPending { get; init; } = [];
}

public sealed class SignalDispositionRecord
{
    public int Signal { get; init; }
    public string Name { get; init; } = "";
    /// <summary>0 is SIG_DFL, 1 is SIG_IGN, anything else the handler's address.</summary>
    public ulong Handler { get; init; }
    public ulong Flags { get; init; }
    public ulong Restorer { get; init; }
    public ulong Mask { get; init; }
}
