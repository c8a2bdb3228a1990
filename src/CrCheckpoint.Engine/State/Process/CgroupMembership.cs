using CrCheckpoint.Engine.Proc;
using CrCheckpoint.Engine.Restart;
using CrCheckpoint.Engine.State.Threads;
using CrCheckpoint.Engine.Tracing;

namespace CrCheckpoint.Engine.State.Process;

/// <summary>
/// Cgroup membership, v1 hierarchies and v2: each process goes back into the cgroup it was in,
/// which is created when missing, as soon as it exists and before it has children or threads, so
/// they start in it as they did. A cgroup whose hierarchy is not mounted here, or that cannot be
/// created or entered, is refused. Threads of one process in different cgroups are refused at the
/// checkpoint.
/// </summary>
public static class CgroupMembership
{
    public static List<CgroupRecord> Capture(int pid, IReadOnlyList<Tracee> threads)
    {
        var text = ProcText.Read($"/proc/{pid}/cgroup");
        foreach (var t in threads.Where(t => t.Tid != pid))
        {
            string own;
            try { own = ProcText.Read($"/proc/{pid}/task/{t.Tid}/cgroup"); }
            catch (FileNotFoundException) { continue; }
            if (own != text)
                throw new UnsupportedStateException(pid,
                    $"thread {t.Tid} is in other cgroups than the main thread ({Describe(own)} against {Describe(text)}); threads in different cgroups cannot be restored yet");
        }
        return ProcCgroup.Parse(text).Select(l => new CgroupRecord { Hierarchy = l.Hierarchy, Controllers = l.Controllers, Path = l.Path }).ToList();
    }

    private static string Describe(string text) =>
        string.Join(", ", ProcCgroup.Parse(text).Where(l => l.Path != "/").Select(l => $"{(l.Controllers == "" ? "v2" : l.Controllers)}:{l.Path}")) is { Length: > 0 } s ? s : "the root cgroups";

    /// <summary>Moves the new (still single-threaded) process into each saved cgroup it is not in.</summary>
    /// <param name="created">Gets the directories made here, for <see cref="RemoveCreated"/> to take away if the restart fails.</param>
    public static void Restore(int pid, ProcessRecord process, List<string> created, MessageLog log)
    {
        if (process.Cgroups is not { } saved) return;
        var current = ProcCgroup.Read($"/proc/{pid}/cgroup");
        List<CgroupMount>? mounts = null;
        foreach (var c in saved)
        {
            var now = current.FirstOrDefault(l => l.Controllers == c.Controllers);
            if (now.Path == c.Path) continue;
            var line = new CgroupLine(c.Hierarchy, c.Controllers, c.Path);
            var name = c.Controllers == "" ? $"the v2 cgroup {c.Path}" : $"cgroup {c.Path} of hierarchy {c.Controllers}";
            if (now.Path is null)
                throw Refused(process, name, "that hierarchy does not exist on this machine");
            mounts ??= ProcCgroup.Mounts();
            var directory = ProcCgroup.DirectoryOf(line, mounts)
                ?? throw Refused(process, name, "no mount of that hierarchy reaches it here; mount it (or the part holding that cgroup)");
            try
            {
                if (!Directory.Exists(directory))
                {
                    Directory.CreateDirectory(directory);
                    created.Add(directory);
                    log.Add($"created {name} ({directory}) for process {process.Pid}");
                }
                // cgroup.procs moves the whole thread group; it has one thread yet.
                File.WriteAllText(System.IO.Path.Combine(directory, "cgroup.procs"), pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw Refused(process, name, e.Message);
            }
        }
    }

    /// <summary>
    /// After a failed restart, once its processes are killed and reaped: the cgroups it made go
    /// again, deepest first. A cgroup stays busy for a moment after its last process is reaped.
    /// </summary>
    public static void RemoveCreated(List<string> created, MessageLog log)
    {
        foreach (var directory in Enumerable.Reverse(created))
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (true)
            {
                try
                {
                    Directory.Delete(directory);
                    break;
                }
                catch (IOException) when (clock.ElapsedMilliseconds < 2000) { Thread.Sleep(10); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    log.Add($"could not remove the cgroup {directory} the restart had made: {e.Message}");
                    break;
                }
            }
        }
        created.Clear();
    }

    private static RestartException Refused(ProcessRecord process, string name, string why) =>
        new(RestartFailure.Unsupported,
            $"process {process.Pid} ({process.Name}) was in {name}, which the restart cannot put it back in: {why}.", process.Pid.ToString());

    /// <summary>Every thread's cgroups as /proc shows them, against the context.</summary>
    public static void Verify(int pid, IReadOnlyList<(Tracee Tracee, ThreadRecord Record)> threads, ProcessRecord process)
    {
        if (process.Cgroups is not { } saved) return;
        // The threads are made after the process joined its cgroups and inherit them (threads in
        // different cgroups are refused at checkpoint), so the main thread speaks for them all.
        foreach (var (tracee, _) in threads.Take(1))
        {
            var now = ProcCgroup.Read($"/proc/{pid}/task/{tracee.Tid}/cgroup");
            var who = tracee.Tid == pid ? "" : $"thread {tracee.Tid}: ";
            foreach (var c in saved)
                RestartCheck.Expect(pid, $"{who}the cgroup in hierarchy {(c.Controllers == "" ? "v2" : c.Controllers)}", c.Path,
                    now.FirstOrDefault(l => l.Controllers == c.Controllers).Path);
        }
    }
}
