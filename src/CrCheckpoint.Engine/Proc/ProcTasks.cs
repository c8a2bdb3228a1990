namespace CrCheckpoint.Engine.Proc;

/// <summary>Threads and children of a process, from /proc/PID/task.</summary>
public static class ProcTasks
{
    public static List<int> ThreadIds(int pid)
    {
        var ids = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories($"/proc/{pid}/task"))
            if (int.TryParse(System.IO.Path.GetFileName(dir), out var tid)) ids.Add(tid);
        ids.Sort();
        return ids;
    }

    /// <summary>The children of every thread; none for a process that is gone.</summary>
    public static List<int> Children(int pid)
    {
        var children = new List<int>();
        List<int> threads;
        try { threads = ThreadIds(pid); }
        catch (DirectoryNotFoundException) { return children; }
        foreach (var tid in threads)
        {
            string text;
            try { text = File.ReadAllText($"/proc/{pid}/task/{tid}/children"); }
            catch (IOException) { continue; }
            foreach (var part in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                children.Add(int.Parse(part));
        }
        return children;
    }

    public static bool Exists(int pid) => Directory.Exists($"/proc/{pid}");
}
