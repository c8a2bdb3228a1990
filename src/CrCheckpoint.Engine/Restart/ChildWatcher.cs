using CrCheckpoint.Engine.Native;

namespace CrCheckpoint.Engine.Restart;

/// <summary>
/// A process the engine restarted or started (cr_restart and cr_run are the parents of what they
/// start) is a child of the engine's process. A thread watches it, so it never lingers as a
/// zombie of the host, and -Wait can learn how it ended. The thread sleeps on a pidfd, which wakes only on exit: a blocking waitpid would
/// also swallow the ptrace stops of a later checkpoint of the same process.
/// </summary>
internal sealed unsafe class ChildWatcher
{
    private const int CLD_EXITED = 1;
    private readonly TaskCompletionSource<ProcessExit> _exit = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<int, ChildWatcher> Running = new();

    /// <summary>True for a child of this process that the engine restarted (and watches) itself.</summary>
    public static bool IsWatched(int pid) => Running.ContainsKey(pid);

    public ChildWatcher(int pid)
    {
        Pid = pid;
        Running[pid] = this;
        var pidfd = (int)Interop.syscall(Syscalls.pidfd_open, pid, 0);
        if (pidfd < 0)
        {
            _exit.TrySetResult(new ProcessExit(pid, null, null));
            return;
        }
        var thread = new Thread(() => Reap(pidfd)) { IsBackground = true, Name = $"CrCheckpoint reaper {pid}" };
        thread.Start();
    }

    public int Pid { get; }

    private void Reap(int pidfd)
    {
        try
        {
            var poll = new Interop.PollFd { Fd = pidfd, Events = Interop.POLLIN };
            while (Interop.poll(&poll, 1, -1) == -1 && ErrnoCheck.LastErrno == (int)Errno.EINTR) { }

            var info = stackalloc byte[128];
            new Span<byte>(info, 128).Clear();
            // __WALL: a child created with exit_signal 0 is only seen by waits that ask for all children.
            while (Interop.waitid(Interop.P_PID, Pid, info, Interop.WEXITED | Interop.WNOHANG | Interop.__WALL) == -1
                   && ErrnoCheck.LastErrno == (int)Errno.EINTR) { }
            var code = *(int*)(info + 8);
            var status = *(int*)(info + 24);
            if (*(int*)(info + 16) != Pid)
                _exit.TrySetResult(new ProcessExit(Pid, null, null)); // reaped elsewhere (a checkpoint with -Kill)
            else if (code == CLD_EXITED)
                _exit.TrySetResult(new ProcessExit(Pid, status, null));
            else
                _exit.TrySetResult(new ProcessExit(Pid, null, status));
        }
        finally
        {
            Interop.close(pidfd);
            Running.TryRemove(Pid, out _);
        }
    }

    public ProcessExit WaitForExit(CancellationToken cancel)
    {
        _exit.Task.Wait(cancel);
        return _exit.Task.Result;
    }
}
