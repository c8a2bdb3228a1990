using System.Globalization;
using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Restart;
using CrCheckpoint.Engine.State.Threads;
using CrCheckpoint.Engine.Tracing;

namespace CrCheckpoint.Engine.State.Process;

public static class ProcessControls
{
    private const int PR_SET_PDEATHSIG = 1, PR_GET_PDEATHSIG = 2, PR_GET_DUMPABLE = 3, PR_SET_DUMPABLE = 4, PR_SET_CHILD_SUBREAPER = 36,
        PR_GET_CHILD_SUBREAPER = 37, PR_SET_THP_DISABLE = 41, PR_GET_THP_DISABLE = 42;
    private const int O_WRONLY = 1;

    // ---- checkpoint ----

    public static ProcessControlsRecord Capture(Tracee leader, IReadOnlyList<Tracee> threads)
    {
        var pid = leader.Pid;
        var loginUid = ReadLoginUid($"/proc/{pid}/loginuid");
        // The loginuid belongs to each task; new threads take their creator's. Threads that differ
        // would need each its own write, which only the thread itself may make: not done (yet).
        foreach (var t in threads.Where(t => t.Tid != pid))
            if (ReadLoginUid($"/proc/{pid}/task/{t.Tid}/loginuid") is var own && own != loginUid)
                throw new UnsupportedStateException(pid,
                    $"thread {t.Tid} has audit loginuid {own} and the main thread {loginUid}; threads with different loginuids cannot be restored");
        var thp = leader.CheckedSyscall("prctl(PR_GET_THP_DISABLE)", Syscalls.prctl, PR_GET_THP_DISABLE, 0, 0, 0, 0);
        int subreaper;
        using (var scratch = leader.Scratch())
        {
            var flag = scratch.Buffer(4);
            leader.CheckedSyscall("prctl(PR_GET_CHILD_SUBREAPER)", Syscalls.prctl, PR_GET_CHILD_SUBREAPER, flag);
            subreaper = flag.Read<int>();
        }
        return new ProcessControlsRecord
        {
            OomScoreAdj = ReadOomScoreAdj(pid),
            LoginUid = loginUid,
            ThpDisable = (int)thp,
            ChildSubreaper = subreaper != 0,
        };
    }

    /// <summary>prctl(PR_GET_DUMPABLE); null where the process would not say.</summary>
    public static int? CaptureDumpable(Tracee leader)
    {
        var dumpable = leader.Syscall(Syscalls.prctl, PR_GET_DUMPABLE);
        return dumpable >= 0 ? (int)dumpable : null;
    }

    /// <summary>Each thread's parent-death signal (0: none), all threads at once, each into its own int of the shared scratch page.</summary>
    public static int[] ParentDeathSignalsOfEach(IReadOnlyList<Tracee> threads)
    {
        using var scratch = threads[0].Scratch();
        var signals = scratch.Buffer(threads.Count * 4);
        var results = Tracee.SyscallInEach(threads.Select((t, i) => (t, Syscalls.prctl, (long)PR_GET_PDEATHSIG, (long)signals.Slice(i * 4, 4), 0L, 0L)).ToList());
        for (var i = 0; i < results.Length; i++) RemoteResult.Check(results[i], $"prctl(PR_GET_PDEATHSIG) in thread {threads[i].Tid}");
        var values = new int[threads.Count];
        signals.Read(MemoryMarshal.AsBytes(values.AsSpan()));
        return values;
    }

    // ---- restart ----

    /// <summary>
    /// Right after the empty process is made, before its children are: a child learns at its birth
    /// whether an ancestor is a subreaper, and takes its parent's loginuid, THP switch and
    /// oom_score_adj, which are then set again to its own.
    /// </summary>
    public static void Restore(Tracee tracee, ProcessRecord process, MessageLog log)
    {
        if (process.Controls is not { } c) return;
        var pid = tracee.Pid;
        if (c.ChildSubreaper)
            tracee.CheckedSyscall("prctl(PR_SET_CHILD_SUBREAPER)", Syscalls.prctl, PR_SET_CHILD_SUBREAPER, 1);
        tracee.CheckedSyscall("prctl(PR_SET_THP_DISABLE)", Syscalls.prctl, PR_SET_THP_DISABLE, c.ThpDisable != 0 ? 1 : 0, c.ThpDisable & ~1, 0, 0);

        if (ReadLoginUid($"/proc/{pid}/loginuid") != c.LoginUid)
        {
            // Only a task may write its own loginuid.
            using var scratch = tracee.Scratch();
            var fd = tracee.CheckedSyscall("open of /proc/self/loginuid", Syscalls.openat, Interop.AT_FDCWD,
                scratch.String("/proc/self/loginuid"), O_WRONLY, 0);
            var text = System.Text.Encoding.ASCII.GetBytes(c.LoginUid.ToString(CultureInfo.InvariantCulture));
            var r = tracee.Syscall(Syscalls.write, fd, scratch.Bytes(text), text.Length);
            tracee.Syscall(Syscalls.close, fd);
            if (RemoteResult.Failed(r, out var errno))
                throw new RestartException(RestartFailure.PermissionDenied,
                    $"process {process.Pid} ({process.Name}) had audit loginuid {c.LoginUid}, which the restart cannot give back: " +
                    $"{System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage((int)errno)} (setting a loginuid needs CAP_AUDIT_CONTROL, and an immutable one cannot change).",
                    process.Pid.ToString());
        }

        if (ReadOomScoreAdj(pid) != c.OomScoreAdj)
        {
            try { File.WriteAllText($"/proc/{pid}/oom_score_adj", c.OomScoreAdj.ToString(CultureInfo.InvariantCulture)); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new RestartException(RestartFailure.PermissionDenied,
                    $"process {process.Pid} ({process.Name}) had oom_score_adj {c.OomScoreAdj}, which the restart cannot give back: {e.Message} " +
                    "(a value below the restarting process's own needs CAP_SYS_RESOURCE).", process.Pid.ToString(), e);
            }
        }
        if (c.ChildSubreaper) log.Add($"process {pid} is a child subreaper again");
    }

    /// <summary>
    /// The calls each thread makes once its credentials are back, because each change of credentials
    /// clears what they set: its parent-death signal, and (in the main thread) the dumpable flag.
    /// <para>
    /// A parent-death signal belongs to the link with the parent. A process whose parent is not
    /// restarted with it becomes a child of the restarting PowerShell (of the engine thread that
    /// made it, to the kernel), so the signal would fire when that thread ends, not when its parent
    /// dies: it is not set, and the restart says so.
    /// </para>
    /// </summary>
    public static Func<ThreadRecord, bool, RemoteBatch> AfterCredentials(ProcessRecord process, IReadOnlyList<ThreadRecord> threads,
        bool parentRestarted, MessageLog log)
    {
        if (!parentRestarted && threads.FirstOrDefault(t => t.ParentDeathSignal != 0) is { } with)
        {
            log.Add($"process {process.Pid} ({process.Name}) had a parent-death signal ({Native.Signals.Name(with.ParentDeathSignal)}) for its parent {process.ParentPid}, which is not restarted; " +
                    "its new parent is this PowerShell, and the signal is not set again");
        }
        return (thread, leader) =>
        {
            var calls = new RemoteBatch();
            if (thread.ParentDeathSignal != 0 && parentRestarted)
                calls.Add("prctl(PR_SET_PDEATHSIG)", new RemoteCall(Syscalls.prctl, PR_SET_PDEATHSIG, thread.ParentDeathSignal));
            if (leader && process.Dumpable is { } dumpable)
                calls.Add("prctl(PR_SET_DUMPABLE)", new RemoteCall(Syscalls.prctl, PR_SET_DUMPABLE, dumpable));
            return calls;
        };
    }

    // ---- read-back ----

    public static void Verify(int pid, ProcessRecord process)
    {
        if (process.Controls is not { } c) return;
        RestartCheck.Expect(pid, "oom_score_adj", c.OomScoreAdj, ReadOomScoreAdj(pid));
        RestartCheck.Expect(pid, "the audit loginuid", c.LoginUid, ReadLoginUid($"/proc/{pid}/loginuid"));
        // THP_enabled is 0 only when huge pages are disabled outright (PR_GET_THP_DISABLE 1).
        var thpEnabled = Proc.ProcStatus.Read(pid)["THP_enabled"];
        if (thpEnabled is not null)
            RestartCheck.Expect(pid, "THP_enabled (prctl PR_SET_THP_DISABLE)", c.ThpDisable == 1 ? "0" : "1", thpEnabled);
    }

    private static int ReadOomScoreAdj(int pid) =>
        int.Parse(Proc.ProcText.Read($"/proc/{pid}/oom_score_adj").Trim(), CultureInfo.InvariantCulture);

    private static uint ReadLoginUid(string path)
    {
        try { return uint.Parse(Proc.ProcText.Read(path).Trim(), CultureInfo.InvariantCulture); }
        catch (FileNotFoundException) { return uint.MaxValue; } // kernels without audit
    }
}
