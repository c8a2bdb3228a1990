using CrCheckpoint.Engine.Native;

namespace CrCheckpoint.Engine.Restart;

/// <summary>
/// A restarted process is a child of the engine's process (cr_restart is the parent of what it
/// restarts). A thread waits for it, so it never lingers as a zombie of the host, and -Wait can
/// learn how it ended.
/// </summary>
internal sealed unsafe class RestartedProcess
{
    private readonly TaskCompletionSource<ProcessExit> _exit = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public RestartedProcess(int pid)
    {
        Pid = pid;
        var thread = new Thread(Reap) { IsBackground = true, Name = $"CrCheckpoint reaper {pid}" };
        thread.Start();
    }

    public int Pid { get; }

    private void Reap()
    {
        while (true)
        {
            int raw;
            // __WALL: a child created with exit_signal 0 is only seen by waits that ask for all children.
            var r = Interop.waitpid(Pid, &raw, Interop.__WALL);
            if (r == -1 && ErrnoCheck.LastErrno == (int)Errno.EINTR) continue;
            if (r == -1)
            {
                _exit.TrySetResult(new ProcessExit(Pid, null, null));
                return;
            }
            var status = new WaitStatus(raw);
            if (status.Exited)
            {
                _exit.TrySetResult(new ProcessExit(Pid, status.ExitCode, null));
                return;
            }
            if (status.Signaled)
            {
                _exit.TrySetResult(new ProcessExit(Pid, null, status.TermSignal));
                return;
            }
        }
    }

    public ProcessExit WaitForExit(CancellationToken cancel)
    {
        _exit.Task.Wait(cancel);
        return _exit.Task.Result;
    }
}
