namespace CrCheckpoint.Engine;

/// <summary>The engine's running account of a checkpoint or restart (BLCR's "kernel messages").</summary>
public sealed class MessageLog(Action<string>? progress)
{
    private readonly List<string> _messages = new();
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();

    public void Add(string message)
    {
        var line = $"[{_clock.Elapsed.TotalMilliseconds,8:F1} ms] {message}";
        _messages.Add(line);
        progress?.Invoke(line);
    }

    public IReadOnlyList<string> Messages => _messages;
}
