using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;

namespace CrCheckpoint.Engine.Tracing;

/// <summary>
/// The kernel accepts ptrace requests for a tracee only from the thread that attached to it, so every
/// operation that traces runs start to finish on one dedicated OS thread (no thread pool, no await).
/// </summary>
public static class TracerThread
{
    public static T Run<T>(Func<T> work, string name = "CrCheckpoint tracer")
    {
        T result = default!;
        ExceptionDispatchInfo? failure = null;
        var thread = new Thread(() =>
        {
            try { result = work(); }
            catch (Exception e) { failure = ExceptionDispatchInfo.Capture(e); }
        }, maxStackSize: 16 << 20)
        { IsBackground = true, Name = name };
        thread.Start();
        thread.Join();
        failure?.Throw();
        return result;
    }

    private static readonly Lazy<BlockingCollection<Action>> LongLived = new(() =>
    {
        var queue = new BlockingCollection<Action>();
        new Thread(() => { foreach (var item in queue.GetConsumingEnumerable()) item(); }, maxStackSize: 16 << 20)
            { IsBackground = true, Name = "CrCheckpoint restarter" }.Start();
        return queue;
    });

    /// <summary>
    /// Like <see cref="Run{T}"/>, on one thread that lives as long as the engine's process. A restart
    /// forks its processes from here: a parent-death signal (PR_SET_PDEATHSIG) fires when the
    /// thread that forked the process ends, and for a restarted root that must mean its new parent,
    /// this process, ending, not the restart returning. Restarts therefore run one at a time.
    /// </summary>
    public static T RunLongLived<T>(Func<T> work)
    {
        T result = default!;
        ExceptionDispatchInfo? failure = null;
        using var done = new ManualResetEventSlim();
        LongLived.Value.Add(() =>
        {
            try { result = work(); }
            catch (Exception e) { failure = ExceptionDispatchInfo.Capture(e); }
            finally { done.Set(); }
        });
        done.Wait();
        failure?.Throw();
        return result;
    }
}
