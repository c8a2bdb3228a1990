namespace CrCheckpoint.Engine.Restart;

/// <summary>cr_restart's --relocate OLD=NEW: rewrites path prefixes on whole path components only.</summary>
public sealed class PathRelocator(IReadOnlyDictionary<string, string> rules)
{
    // Longest prefix first, so /data/run wins over /data.
    private readonly List<(string From, string To)> _rules = rules
        .Select(r => (r.Key.TrimEnd('/'), r.Value.TrimEnd('/')))
        .OrderByDescending(r => r.Item1.Length).ToList();

    public string Map(string path)
    {
        foreach (var (from, to) in _rules)
        {
            if (from.Length == 0) continue;
            if (path == from) return to.Length == 0 ? "/" : to;
            if (path.StartsWith(from + "/", StringComparison.Ordinal)) return to + path[from.Length..];
        }
        return path;
    }
}
