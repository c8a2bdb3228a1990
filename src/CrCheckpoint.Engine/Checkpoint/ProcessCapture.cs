using CrCheckpoint.Engine.Proc;
using CrCheckpoint.Engine.State;
using CrCheckpoint.Engine.State.Credentials;
using CrCheckpoint.Engine.State.Files;
using CrCheckpoint.Engine.State.Limits;
using CrCheckpoint.Engine.State.Memory;
using CrCheckpoint.Engine.State.Process;
using CrCheckpoint.Engine.State.Signals;
using CrCheckpoint.Engine.State.Threads;
using CrCheckpoint.Engine.State.Timers;
using CrCheckpoint.Engine.Tracing;

namespace CrCheckpoint.Engine.Checkpoint;

/// <summary>Reads every kind of state of one frozen process; each kind lives in State/.</summary>
public static class ProcessCapture
{
    public static CapturedProcess Capture(FrozenProcess frozen, char stateBefore, SaveMappedFiles save, TcpRepairHold connections, bool acceptLoss, MessageLog log)
    {
        var tracee = frozen.Leader;
        var pid = tracee.Pid;
        var stat = ProcStat.Read(pid);
        var status = ProcStatus.Read(pid);
        var areas = ProcMaps.Read(pid);
        var (files, unlinked) = FileCapture.Capture(pid, connections);
        StateLoss.Check(pid, files, acceptLoss, log);

        frozen.Prepare(areas);

        var attributes = ProcessAttributes.Capture(tracee);
        var executable = attributes.Executable;
        var layout = MemoryLayoutState.Capture(tracee, stat);
        var signals = SignalCapture.Capture(tracee, status);
        var itimers = IntervalTimers.Capture(tracee);
        var posixTimers = PosixTimerState.Capture(tracee, File.ReadAllText($"/proc/{pid}/timers"));
        var credentials = CredentialsState.Capture(tracee, status);
        var threads = ThreadCapture.Capture(frozen.Threads, t => t == tracee ? stat.Comm : ThreadName(pid, t.Tid), credentials);
        if (threads.FirstOrDefault(t => t.Sandbox is { Mode: > 0 }) is { Sandbox: { } sandbox })
            log.Add($"process {pid} runs in a seccomp sandbox ({(sandbox.Mode == 1 ? "strict" : $"{sandbox.Filters.Count} filter(s)")}); it is saved with its threads");
        var inSyscalls = threads.Where(t => t.InterruptedSyscall is not null).ToList();
        if (inSyscalls.Count is > 0 and <= 4)
            foreach (var t in inSyscalls)
                log.Add($"thread {t.Tid} of process {pid} was inside system call {t.InterruptedSyscall!.Number} (return {t.InterruptedSyscall.ReturnCode}); it will carry on with it");
        else if (inSyscalls.Count > 4)
            log.Add($"{inSyscalls.Count} threads of process {pid} were inside system calls ({string.Join(", ", inSyscalls.GroupBy(t => t.InterruptedSyscall!.Number).Select(g => $"{g.Count()} in {g.Key}"))}); they will carry on with them");

        var (map, plans, mapped) = MemoryCapture.Plan(pid, areas, executable, save);
        var exeIdentity = map.Areas.FirstOrDefault(a => a.Path == executable || a.Path == executable + " (deleted)")?.File;

        var process = new ProcessRecord
        {
            Pid = pid,
            ParentPid = stat.ParentId,
            ProcessGroupId = stat.ProcessGroupId,
            SessionId = stat.SessionId,
            TtyNumber = stat.TtyNumber,
            ForegroundProcessGroup = stat.ForegroundProcessGroup,
            Name = stat.Comm,
            Executable = executable,
            ExecutableIdentity = exeIdentity,
            CommandLine = attributes.CommandLine,
            StateAtCheckpoint = stateBefore.ToString(),
            WasStopped = frozen.GroupStopSignal != 0 || stateBefore == 'T',
            StopSignal = StopState.Capture(frozen, stateBefore),
            WorkingDirectory = attributes.WorkingDirectory,
            Root = attributes.Root,
            Umask = status.Umask,
            Personality = attributes.Personality,
            Credentials = credentials,
            Limits = ResourceLimits.Capture(pid),
            MemoryLayout = layout,
            Signals = signals,
            Timers = itimers,
            PosixTimers = posixTimers,
            MembarrierRegistrations = attributes.MembarrierRegistrations,
            Dumpable = ProcessControls.CaptureDumpable(tracee),
            ThreadIds = threads.Select(t => t.Tid).ToArray(),
            Controls = ProcessControls.Capture(tracee, frozen.Threads),
            Cgroups = CgroupMembership.Capture(pid, frozen.Threads),
        };

        var toSave = unlinked.Concat(mapped).GroupBy(f => f.Key).Select(g => g.First()).ToList();
        log.Add($"read process {pid} ({stat.Comm}): {threads.Count} thread(s), {areas.Count} memory areas, {plans.Sum(p => p.Runs.Sum(r => r.Count))} pages to save, {files.Descriptors.Count} descriptors, {toSave.Count} files to carry");
        return new CapturedProcess
        {
            Process = process,
            Threads = threads,
            Map = map,
            Plans = plans,
            Files = files,
            FilesToSave = toSave,
        };
    }

    private static string ThreadName(int pid, int tid)
    {
        try { return ProcText.Read($"/proc/{pid}/task/{tid}/comm").TrimEnd('\n'); }
        catch (IOException) { return ""; }
    }
}
