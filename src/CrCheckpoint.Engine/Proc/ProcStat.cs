using System.Globalization;

namespace CrCheckpoint.Engine.Proc;

/// <summary>/proc/PID/stat, with the fields the engine uses named (numbers as in proc(5)).</summary>
public sealed class ProcStat
{
    private readonly string[] _fields; // _fields[0] is field 3 (state)

    private ProcStat(string comm, string[] fields)
    {
        Comm = comm;
        _fields = fields;
    }

    public static ProcStat Read(int pid, int? tid = null) =>
        Parse(ProcText.Read(tid is null ? $"/proc/{pid}/stat" : $"/proc/{pid}/task/{tid}/stat"));

    public static ProcStat Parse(string text)
    {
        // comm may hold spaces and parentheses: it ends at the last ')'.
        var open = text.IndexOf('(');
        var close = text.LastIndexOf(')');
        var comm = text[(open + 1)..close];
        var rest = text[(close + 2)..].TrimEnd('\n').Split(' ');
        return new ProcStat(comm, rest);
    }

    private long Field(int number) => long.Parse(_fields[number - 3], CultureInfo.InvariantCulture);

    public string Comm { get; }
    public char State => _fields[0][0];
    public int ParentId => (int)Field(4);
    public int ProcessGroupId => (int)Field(5);
    public int SessionId => (int)Field(6);
    public int TtyNumber => (int)Field(7);
    public int ForegroundProcessGroup => (int)Field(8);
    public uint Flags => (uint)Field(9);
    public int ThreadCount => (int)Field(20);
    public ulong StartTime => (ulong)Field(22);
    public ulong StartCode => (ulong)Field(26);
    public ulong EndCode => (ulong)Field(27);
    public ulong StartStack => (ulong)Field(28);
    public ulong StartData => (ulong)Field(45);
    public ulong EndData => (ulong)Field(46);
    public ulong StartBrk => (ulong)Field(47);
    public ulong ArgStart => (ulong)Field(48);
    public ulong ArgEnd => (ulong)Field(49);
    public ulong EnvStart => (ulong)Field(50);
    public ulong EnvEnd => (ulong)Field(51);
    public int ExitCode => (int)Field(52);

    private const uint PF_KTHREAD = 0x00200000;
    public bool IsKernelThread => (Flags & PF_KTHREAD) != 0;
}
