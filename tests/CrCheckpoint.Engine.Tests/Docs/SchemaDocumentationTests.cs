using System.Reflection;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using CrCheckpoint.Engine.Schema;
using CrCheckpoint.Engine.State.Files;
using CrCheckpoint.Engine.State.Memory;

namespace CrCheckpoint.Engine.Tests.Docs;

/// <summary>
/// The documents that describe the context file and the state it holds are checked against the
/// schema itself, so that neither can drift: every metadata field is in docs/context-format.md, and
/// every kind of descriptor and memory area and every record field is in the table of docs/state.md.
/// </summary>
public class SchemaDocumentationTests
{
    private static string Doc(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var path = Path.Combine(dir.FullName, "docs", name);
            if (File.Exists(path)) return File.ReadAllText(path);
        }
        throw new FileNotFoundException($"docs/{name} not found above {AppContext.BaseDirectory}");
    }

    /// <summary>The metadata types of every record kind, and every type their properties hold, recursively.</summary>
    private static List<Type> SchemaTypes()
    {
        var roots = typeof(RecordSchema).GetCustomAttributesData()
            .Where(a => a.AttributeType == typeof(JsonSerializableAttribute))
            .Select(a => (Type)a.ConstructorArguments[0].Value!)
            .ToList();
        Assert.NotEmpty(roots);
        var seen = new List<Type>();
        var pending = new Queue<Type>(roots);
        while (pending.Count > 0)
        {
            var t = pending.Dequeue();
            if (seen.Contains(t)) continue;
            seen.Add(t);
            foreach (var p in JsonProperties(t))
                foreach (var inner in Inner(p.PropertyType))
                    if (inner.Assembly == typeof(RecordSchema).Assembly && inner.IsClass && !seen.Contains(inner)) pending.Enqueue(inner);
        }
        return seen;
    }

    private static IEnumerable<Type> Inner(Type t)
    {
        yield return t;
        if (t.IsArray) foreach (var x in Inner(t.GetElementType()!)) yield return x;
        foreach (var g in t.IsGenericType ? t.GetGenericArguments() : []) foreach (var x in Inner(g)) yield return x;
    }

    private static IEnumerable<PropertyInfo> JsonProperties(Type t) =>
        t.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.GetMethod is not null && (p.SetMethod is not null) && p.GetCustomAttribute<JsonIgnoreAttribute>() is null);

    private static string JsonName(PropertyInfo p) =>
        p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name ?? char.ToLowerInvariant(p.Name[0]) + p.Name[1..];

    /// <summary>Every `name` in the text outside code blocks; a name in a list such as `a`/`b` counts.</summary>
    private static HashSet<string> Backticked(string text)
    {
        var prose = Regex.Replace(text, "^```.*?^```", "", RegexOptions.Multiline | RegexOptions.Singleline);
        return Regex.Matches(prose, "`([^`\n]+)`").Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);
    }

    [Fact]
    public void EveryMetadataFieldIsInTheFormatDocument()
    {
        var documented = Backticked(Doc("context-format.md"));
        var missing = SchemaTypes()
            .SelectMany(t => JsonProperties(t).Select(p => (Type: t.Name, Name: JsonName(p))))
            .Where(x => !documented.Contains(x.Name))
            .Select(x => $"{x.Type}.{x.Name}")
            .Distinct()
            .ToList();
        Assert.True(missing.Count == 0, "docs/context-format.md does not mention (in backticks): " + string.Join(", ", missing));
    }

    [Fact]
    public void EveryKindOfStateIsInTheStateTable()
    {
        var documented = Backticked(Doc("state.md"));
        // The kinds, and every field of the records that hold a process's own state (not the image's bookkeeping).
        Type[] stateRecords =
        [
            typeof(ProcessRecord), typeof(ThreadRecord), typeof(FileDescriptorRecord),
            typeof(MemoryAreaRecord), typeof(CredentialsRecord),
        ];
        var wanted = Enum.GetNames<FileDescriptorKind>().Concat(Enum.GetNames<MemoryAreaKind>())
            .Select(n => char.ToLowerInvariant(n[0]) + n[1..])
            .Concat(stateRecords.SelectMany(t => JsonProperties(t).Select(JsonName)))
            .Distinct();
        var missing = wanted.Where(w => !documented.Contains(w)).ToList();
        Assert.True(missing.Count == 0, "docs/state.md does not mention (in backticks): " + string.Join(", ", missing));
    }
}
