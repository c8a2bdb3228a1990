using CrCheckpoint.Engine.Native;
using CrCheckpoint.Engine.Restart;
using CrCheckpoint.Engine.State.Threads;
using CrCheckpoint.Engine.Tracing;

namespace CrCheckpoint.Engine.State.Process;

public static unsafe class Scheduling
{
    private const long SYS_getpriority = 140, SYS_setpriority = 141, SYS_sched_setaffinity = 203,
        SYS_sched_getaffinity = 204, SYS_sched_setattr = 314, SYS_sched_getattr = 315;
    private const int PRIO_PROCESS = 0, AttrSize = 56, AffinityBytes = 1024;
    private const ulong SCHED_FLAG_UTIL_CLAMP = 0x20 | 0x40;

    /// <summary>Read from outside; works on a frozen thread and on one being rebuilt alike.</summary>
    public static SchedulingRecord Capture(int tid)
    {
        var attr = stackalloc byte[AttrSize];
        var r = Interop.syscall(SYS_sched_getattr, tid, (long)attr, AttrSize, 0);
        if (r < 0) throw new NativeException($"sched_getattr of thread {tid}", Marshal.GetLastPInvokeError());
        // The raw call answers 20 - nice, so that no nice value reads as an error.
        var prio = Interop.syscall(SYS_getpriority, PRIO_PROCESS, tid);
        if (prio < 0) throw new NativeException($"getpriority of thread {tid}", Marshal.GetLastPInvokeError());
        var mask = new byte[AffinityBytes];
        long size;
        fixed (byte* m = mask) size = Interop.syscall(SYS_sched_getaffinity, tid, AffinityBytes, (long)m);
        if (size < 0) throw new NativeException($"sched_getaffinity of thread {tid}", Marshal.GetLastPInvokeError());
        var a = new ReadOnlySpan<byte>(attr, AttrSize);
        return new SchedulingRecord
        {
            Policy = BitConverter.ToInt32(a[4..]),
            Flags = BitConverter.ToUInt64(a[8..]),
            Nice = 20 - (int)prio,
            Priority = BitConverter.ToInt32(a[20..]),
            Runtime = BitConverter.ToUInt64(a[24..]),
            Deadline = BitConverter.ToUInt64(a[32..]),
            Period = BitConverter.ToUInt64(a[40..]),
            UtilMin = BitConverter.ToUInt32(a[48..]),
            UtilMax = BitConverter.ToUInt32(a[52..]),
            Affinity = mask[..(int)size],
        };
    }

    /// <summary>
    /// Every thread's scheduling, set from outside once its credentials are back (a change of
    /// them does not touch it). Only what differs from what the new thread has is set, so a
    /// restart that keeps the defaults needs no CAP_SYS_NICE.
    /// </summary>
    public static void Restore(int pid, IReadOnlyList<(Tracee Tracee, ThreadRecord Record)> threads)
    {
        var attr = stackalloc byte[AttrSize];
        foreach (var (tracee, record) in threads)
        {
            if (record.Scheduling is not { } saved) continue;
            var tid = tracee.Tid;
            var now = Capture(tid);
            if (!saved.SamePolicyAs(now))
            {
                var a = new Span<byte>(attr, AttrSize);
                a.Clear();
                var flags = saved.Flags;
                if (saved.UtilMin != now.UtilMin || saved.UtilMax != now.UtilMax) flags |= SCHED_FLAG_UTIL_CLAMP;
                BitConverter.TryWriteBytes(a[0..], AttrSize);
                BitConverter.TryWriteBytes(a[4..], saved.Policy);
                BitConverter.TryWriteBytes(a[8..], flags);
                BitConverter.TryWriteBytes(a[16..], saved.Nice);
                BitConverter.TryWriteBytes(a[20..], saved.Priority);
                BitConverter.TryWriteBytes(a[24..], saved.Runtime);
                BitConverter.TryWriteBytes(a[32..], saved.Deadline);
                BitConverter.TryWriteBytes(a[40..], saved.Period);
                BitConverter.TryWriteBytes(a[48..], saved.UtilMin);
                BitConverter.TryWriteBytes(a[52..], saved.UtilMax);
                if (Interop.syscall(SYS_sched_setattr, tid, (long)attr, 0) < 0)
                    throw Refused(pid, tid, $"scheduling policy {PolicyName(saved.Policy)} (priority {saved.Priority}, flags 0x{saved.Flags:x})",
                        "real-time and deadline policies need CAP_SYS_NICE or RLIMIT_RTPRIO, and room in the cgroup's real-time budget");
            }
            // For the real-time policies sched_setattr leaves the nice value alone.
            if (saved.Nice != Capture(tid).Nice && Interop.syscall(SYS_setpriority, PRIO_PROCESS, tid, saved.Nice) < 0)
                throw Refused(pid, tid, $"nice value {saved.Nice}", "a nice value below the current one needs CAP_SYS_NICE or RLIMIT_NICE");
            if (saved.Affinity.Length > 0 && !saved.Affinity.AsSpan().SequenceEqual(now.Affinity))
                fixed (byte* m = saved.Affinity)
                    if (Interop.syscall(SYS_sched_setaffinity, tid, saved.Affinity.Length, (long)m) < 0)
                        throw Refused(pid, tid, $"CPU affinity {Mask(saved.Affinity)}", "the CPUs it names must exist and be allowed by the cpuset");
        }
    }

    private static RestartException Refused(int pid, int tid, string what, string why)
    {
        var errno = Marshal.GetLastPInvokeError();
        return new RestartException(RestartFailure.PermissionDenied,
            $"process {pid}: thread {tid} had {what}, which the restart cannot give back: {Marshal.GetPInvokeErrorMessage(errno)} ({why}).",
            pid.ToString());
    }

    public static void Verify(int pid, IReadOnlyList<(Tracee Tracee, ThreadRecord Record)> threads)
    {
        foreach (var (tracee, record) in threads)
        {
            if (record.Scheduling is not { } saved) continue;
            var now = Capture(tracee.Tid);
            var who = tracee.Tid == pid ? "" : $"thread {tracee.Tid}: ";
            RestartCheck.Expect(pid, $"{who}the scheduling policy", Describe(saved), Describe(now));
            RestartCheck.Expect(pid, $"{who}the nice value", saved.Nice, now.Nice);
            if (saved.Affinity.Length > 0)
                RestartCheck.Expect(pid, $"{who}the CPU affinity", Mask(saved.Affinity), Mask(now.Affinity));
        }
    }

    private static string Describe(SchedulingRecord s) =>
        $"{PolicyName(s.Policy)} priority {s.Priority} flags 0x{s.Flags:x}" +
        (s.Policy == 6 ? $" runtime {s.Runtime} deadline {s.Deadline} period {s.Period}" : "") +
        $" util {s.UtilMin}-{s.UtilMax}";

    private static string PolicyName(int policy) => policy switch
    {
        0 => "SCHED_OTHER", 1 => "SCHED_FIFO", 2 => "SCHED_RR", 3 => "SCHED_BATCH", 5 => "SCHED_IDLE", 6 => "SCHED_DEADLINE",
        _ => $"policy {policy}",
    };

    private static string Mask(byte[] mask) => Convert.ToHexString(mask.Reverse().SkipWhile(b => b == 0).ToArray()) is { Length: > 0 } s ? s : "0";
}
