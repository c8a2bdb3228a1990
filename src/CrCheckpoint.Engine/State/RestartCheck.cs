using CrCheckpoint.Engine.Restart;

namespace CrCheckpoint.Engine.State;

/// <summary>
/// The restart's self-check: each kind of state reads back from the kernel what it restored and
/// compares it with the context before any process is let go. A difference fails the restart
/// (and so kills everything half-built), naming the process and the attribute.
/// </summary>
public static class RestartCheck
{
    /// <summary>Fails the restart unless <paramref name="actual"/> equals <paramref name="saved"/>.</summary>
    /// <param name="what">The attribute, as a user would name it: "descriptor 3: O_NONBLOCK", "nice value".</param>
    public static void Expect<T>(int pid, string what, T saved, T actual)
    {
        if (!EqualityComparer<T>.Default.Equals(saved, actual))
            throw Mismatch(pid, what, saved?.ToString() ?? "none", actual?.ToString() ?? "none");
    }

    public static RestartException Mismatch(int pid, string what, string saved, string actual) =>
        new(RestartFailure.Mismatch,
            $"process {pid}: {what} is {actual} after the restart but was {saved} at the checkpoint; the restart was undone.",
            pid.ToString());
}
