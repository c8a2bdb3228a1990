using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Restart;
using CrCheckpoint.Engine.State.Process;
using CrCheckpoint.Engine.State.Threads;
using CrCheckpoint.Engine.Tracing;

namespace CrCheckpoint.Engine.State.Credentials;

/// <summary>
/// Ids, supplementary groups, the five capability sets and securebits of every thread: read at
/// the checkpoint (/proc/PID/task/TID/status, and PR_GET_SECUREBITS in each thread), given back at
/// restart by calls each thread makes itself, and read back before anything runs.
/// <para>
/// Credentials belong to each thread, not to the process (glibc's setuid signals every thread to
/// make the call), and they are given back last: everything before needs the privilege they give up.
/// The order within is forced by the kernel: with SECBIT_NO_SETUID_FIXUP set first, changing the ids
/// leaves the capability sets alone, so the inheritable bits (which need CAP_SETPCAP), the ambient
/// set (which needs them), the bounding drops and the final securebits all happen while the thread
/// still holds everything, and one last capset lowers the permitted and effective sets to what they were.
/// </para>
/// </summary>
public static class CredentialsState
{
    /// <summary>The ids, groups, capability sets and sandbox flags a status file shows.</summary>
    public static CredentialsRecord FromStatus(Proc.ProcStatus status, int securebits = 0) => new()
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

    private const int PR_CAPBSET_DROP = 24, PR_GET_SECUREBITS = 27, PR_SET_SECUREBITS = 28, PR_CAP_AMBIENT = 47;
    private const int PR_CAP_AMBIENT_RAISE = 2, PR_CAP_AMBIENT_CLEAR_ALL = 4;
    private const int SECBIT_NO_SETUID_FIXUP = 1 << 2, SECBIT_KEEP_CAPS = 1 << 4;
    private const long SYS_capset = 126, SYS_setfsuid = 122, SYS_setfsgid = 123;
    private const uint LINUX_CAPABILITY_VERSION_3 = 0x20080522;

    // ---- checkpoint ----

    /// <summary>The main thread's credentials; securebits are known only to a call the thread makes.</summary>
    public static CredentialsRecord Capture(Tracee leader, Proc.ProcStatus status)
    {
        var bits = leader.CheckedSyscall("prctl(PR_GET_SECUREBITS)", Syscalls.prctl, PR_GET_SECUREBITS);
        return FromStatus(status, (int)bits);
    }

    /// <summary>Each thread's securebits, all threads at once.</summary>
    public static long[] SecurebitsOfEach(IReadOnlyList<Tracee> threads)
    {
        var results = Tracee.SyscallInEach(threads.Select(t => (t, Syscalls.prctl, (long)PR_GET_SECUREBITS, 0L, 0L, 0L)).ToList());
        for (var i = 0; i < results.Length; i++)
            RemoteResult.Check(results[i], $"prctl(PR_GET_SECUREBITS) in thread {threads[i].Tid}");
        return results;
    }

    /// <summary>A thread's own credentials, or null when they are the process's (the usual case).</summary>
    public static CredentialsRecord? OfThread(int pid, int tid, long securebits, CredentialsRecord process)
    {
        if (tid == pid) return null;
        var own = FromStatus(Proc.ProcStatus.Parse(File.ReadAllText($"/proc/{pid}/task/{tid}/status")), (int)securebits);
        return own.SameAs(process) ? null : own;
    }

    // ---- restart ----

    /// <summary>
    /// Every thread gives its credentials back, one trip each, then makes the calls
    /// <paramref name="after"/> names for it (those whose state a change of credentials resets:
    /// the parent-death signal, the dumpable flag).
    /// </summary>
    public static void Restore(IReadOnlyList<(Tracee Tracee, ThreadRecord Record)> threads, ProcessRecord process,
        Func<ThreadRecord, bool, RemoteBatch> after, MessageLog log)
    {
        if (threads.Count == 0) return;
        var leader = threads[0].Tracee;
        // What the rebuilt process holds now: the stub's, inherited from the engine (execve clears KEEP_CAPS).
        var current = FromStatus(Proc.ProcStatus.Read(leader.Pid),
            (int)(Interop.syscall(Syscalls.prctl, PR_GET_SECUREBITS) & ~SECBIT_KEEP_CAPS));
        var changed = 0;
        // The main thread last: its calls end with the dumpable flag, which belongs to the whole
        // address space and which any thread's change of ids resets.
        foreach (var (tracee, record) in threads.Reverse())
        {
            var saved = record.Credentials ?? process.Credentials;
            var isLeader = tracee == leader;
            var calls = new RemoteBatch();
            if (saved.Uids.Length >= 4 && saved.Gids.Length >= 4 && !saved.SameAs(current))
            {
                CheckHeld(process.Pid, record.Tid, saved, current);
                if (64 + saved.Groups.Length * 4 > RemoteBatch.MaxDataBytes)
                    throw new RestartException(RestartFailure.Unsupported,
                        $"process {process.Pid}: thread {record.Tid} has {saved.Groups.Length} supplementary groups, more than a restart can give back.");
                var data = new byte[64 + saved.Groups.Length * 4];
                WriteCapabilities(data.AsSpan(0, 32), current.CapEffective, current.CapPermitted, current.CapInheritable | saved.CapInheritable);
                WriteCapabilities(data.AsSpan(32, 32), saved.CapEffective, saved.CapPermitted, saved.CapInheritable);
                for (var i = 0; i < saved.Groups.Length; i++) BitConverter.TryWriteBytes(data.AsSpan(64 + i * 4), saved.Groups[i]);

                calls.Add("prctl(PR_SET_SECUREBITS, NO_SETUID_FIXUP)", new RemoteCall(Syscalls.prctl, PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP));
                if ((saved.CapInheritable & ~current.CapInheritable) != 0)
                    calls.Add("capset (inheritable)", new RemoteCall(SYS_capset, RemoteArg.Bytes(data), RemoteArg.Bytes(data, 8)));
                if (saved.CapAmbient != current.CapAmbient)
                {
                    calls.Add("prctl(PR_CAP_AMBIENT_CLEAR_ALL)", new RemoteCall(Syscalls.prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL));
                    foreach (var cap in Bits(saved.CapAmbient))
                        calls.Add($"prctl(PR_CAP_AMBIENT_RAISE, {CapName(cap)})", new RemoteCall(Syscalls.prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap));
                }
                foreach (var cap in Bits(current.CapBounding & ~saved.CapBounding))
                    calls.Add($"prctl(PR_CAPBSET_DROP, {CapName(cap)})", new RemoteCall(Syscalls.prctl, PR_CAPBSET_DROP, cap));
                calls.Add("setgroups", new RemoteCall(Syscalls.setgroups, saved.Groups.Length, RemoteArg.Bytes(data, 64)));
                calls.Add("setresgid", new RemoteCall(Syscalls.setresgid, saved.Gids[0], saved.Gids[1], saved.Gids[2]));
                calls.Add("setresuid", new RemoteCall(Syscalls.setresuid, saved.Uids[0], saved.Uids[1], saved.Uids[2]));
                // Both answer the previous id, never an error: the read-back checks them.
                calls.AddUnchecked("setfsgid", new RemoteCall(SYS_setfsgid, saved.Gids[3]));
                calls.AddUnchecked("setfsuid", new RemoteCall(SYS_setfsuid, saved.Uids[3]));
                calls.Add("prctl(PR_SET_SECUREBITS)", new RemoteCall(Syscalls.prctl, PR_SET_SECUREBITS, saved.Securebits));
                calls.Add("capset", new RemoteCall(SYS_capset, RemoteArg.Bytes(data, 32), RemoteArg.Bytes(data, 40)));
                changed++;
            }
            calls.AddRange(after(record, isLeader));
            if (calls.Count > 0) tracee.Run(calls);
        }
        if (changed > 0)
        {
            var c = process.Credentials;
            var where = changed == threads.Count ? (changed > 1 ? ", in every thread" : "") : $", in {changed} of its {threads.Count} threads";
            log.Add($"process {leader.Pid} runs as uid {c.Uids[1]} gid {c.Gids[1]} again{where}, with its capabilities");
        }
    }

    /// <summary>
    /// A restart can lower capabilities but never raise them above what it holds itself: a
    /// thread that had more is refused, not restarted with less.
    /// </summary>
    private static void CheckHeld(int pid, int tid, CredentialsRecord saved, CredentialsRecord current)
    {
        foreach (var (set, missing) in new[]
                 {
                     ("permitted", saved.CapPermitted & ~current.CapPermitted),
                     ("bounding", saved.CapBounding & ~current.CapBounding),
                     ("inheritable", saved.CapInheritable & ~(current.CapInheritable | current.CapBounding)),
                 })
            if (missing != 0)
                throw new RestartException(RestartFailure.PermissionDenied,
                    $"process {pid}: thread {tid} had {string.Join(", ", Bits(missing).Select(CapName))} in its {set} capability set, " +
                    "which the restart does not hold itself; restart it with those capabilities (as a root with all of them).",
                    pid.ToString());
    }

    private static void WriteCapabilities(Span<byte> to, ulong effective, ulong permitted, ulong inheritable)
    {
        BitConverter.TryWriteBytes(to[..4], LINUX_CAPABILITY_VERSION_3);
        BitConverter.TryWriteBytes(to.Slice(4, 4), 0);
        for (var half = 0; half < 2; half++)
        {
            var shift = half * 32;
            BitConverter.TryWriteBytes(to.Slice(8 + half * 12, 4), (uint)(effective >> shift));
            BitConverter.TryWriteBytes(to.Slice(12 + half * 12, 4), (uint)(permitted >> shift));
            BitConverter.TryWriteBytes(to.Slice(16 + half * 12, 4), (uint)(inheritable >> shift));
        }
    }

    private static IEnumerable<int> Bits(ulong mask)
    {
        for (var bit = 0; bit < 64; bit++)
            if ((mask & (1UL << bit)) != 0) yield return bit;
    }

    private static readonly string[] Names =
    [
        "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
        "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
        "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
        "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
        "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
        "CHECKPOINT_RESTORE",
    ];

    private static string CapName(int cap) => cap < Names.Length ? $"CAP_{Names[cap]}" : $"capability {cap}";

    // ---- read-back ----

    /// <summary>Each thread's ids, groups and capability sets as /proc shows them, against the context.</summary>
    public static void Verify(int pid, IReadOnlyList<(Tracee Tracee, ThreadRecord Record)> threads, ProcessRecord process)
    {
        foreach (var (tracee, record) in threads)
        {
            var saved = record.Credentials ?? process.Credentials;
            if (saved.Uids.Length == 0) continue;
            var now = FromStatus(Proc.ProcStatus.Parse(File.ReadAllText($"/proc/{pid}/task/{tracee.Tid}/status")));
            var who = tracee.Tid == pid ? "" : $"thread {tracee.Tid}: ";
            RestartCheck.Expect(pid, $"{who}the user ids (real, effective, saved, filesystem)", string.Join(" ", saved.Uids), string.Join(" ", now.Uids));
            RestartCheck.Expect(pid, $"{who}the group ids (real, effective, saved, filesystem)", string.Join(" ", saved.Gids), string.Join(" ", now.Gids));
            RestartCheck.Expect(pid, $"{who}the supplementary groups", string.Join(" ", saved.Groups), string.Join(" ", now.Groups));
            RestartCheck.Expect(pid, $"{who}the permitted capabilities", $"{saved.CapPermitted:x16}", $"{now.CapPermitted:x16}");
            RestartCheck.Expect(pid, $"{who}the effective capabilities", $"{saved.CapEffective:x16}", $"{now.CapEffective:x16}");
            RestartCheck.Expect(pid, $"{who}the inheritable capabilities", $"{saved.CapInheritable:x16}", $"{now.CapInheritable:x16}");
            RestartCheck.Expect(pid, $"{who}the bounding capabilities", $"{saved.CapBounding:x16}", $"{now.CapBounding:x16}");
            RestartCheck.Expect(pid, $"{who}the ambient capabilities", $"{saved.CapAmbient:x16}", $"{now.CapAmbient:x16}");
        }
    }
}
