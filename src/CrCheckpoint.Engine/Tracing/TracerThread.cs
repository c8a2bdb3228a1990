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
        System.Runtime.ExceptionServices.ExceptionDispatchInfo? failure = null;
        var thread = new Thread(() =>
        {
            try { result = work(); }
            catch (Exception e) { failure = System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e); }
        }, maxStackSize: 16 << 20)
        { IsBackground = true, Name = name };
        thread.Start();
        thread.Join();
        failure?.Throw();
        return result;
    }
}
