using System.Text.RegularExpressions;
using CrCheckpoint.Engine.Schema;
using CrCheckpoint.Engine.State.Files;
using CrCheckpoint.Engine.State.Memory;

namespace CrCheckpoint.Engine.Tests.Docs;

/// <summary>
/// The documents that describe the context file and the state it holds are checked against the
/// schema itself, so that neither can drift: docs/context-format.md has a table for every metadata type
/// with exactly its fields, and every kind of descriptor and memory area and every record field is in the
/// table of docs/state.md.
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

    /// <summary>Every `name` in the text outside code blocks; a name in a list such as `a`/`b` counts.</summary>
    private static HashSet<string> Backticked(string text)
    {
        var prose = Regex.Replace(text, "^```.*?^```", "", RegexOptions.Multiline | RegexOptions.Singleline);
        return Regex.Matches(prose, "`([^`\n]+)`").Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>
    /// The tables of docs/context-format.md: under each heading "#### `TypeName`", the first column of the table
    /// names a field (or, for an enum, a value) in backticks.
    /// </summary>
    private static Dictionary<string, List<string>> DocumentedTables(string text)
    {
        var prose = Regex.Replace(text, "^```.*?^```", "", RegexOptions.Multiline | RegexOptions.Singleline);
        var tables = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        List<string>? current = null;
        foreach (var line in prose.Split('\n'))
        {
            if (line.StartsWith('#'))
            {
                var heading = Regex.Match(line, "^#### `(\\w+)`\\s*$");
                current = null;
                if (heading.Success)
                {
                    Assert.False(tables.ContainsKey(heading.Groups[1].Value), $"docs/context-format.md has two sections for {heading.Groups[1].Value}");
                    tables[heading.Groups[1].Value] = current = [];
                }
                continue;
            }
            var row = Regex.Match(line, "^\\|\\s*`([^`]+)`\\s*\\|");
            if (current is not null && row.Success) current.Add(row.Groups[1].Value);
        }
        return tables;
    }

    /// <summary>Every schema type has its table, with every field (or enum value) it has and nothing else, each once.</summary>
    [Fact]
    public void TheFormatDocumentListsExactlyTheSchema()
    {
        var tables = DocumentedTables(Doc("context-format.md"));
        var schema = SchemaTypes.Classes().ToDictionary(t => t.Name, t => SchemaTypes.JsonProperties(t).Select(SchemaTypes.JsonName).ToList());
        foreach (var e in SchemaTypes.Enums())
            schema[e.Name] = Enum.GetNames(e).Select(SchemaTypes.JsonName).ToList();

        var problems = new List<string>();
        problems.AddRange(schema.Keys.Except(tables.Keys).Select(t => $"{t} has no section \"#### `{t}`\""));
        problems.AddRange(tables.Keys.Except(schema.Keys).Select(t => $"section {t} names no type of the schema"));
        foreach (var (type, fields) in schema)
        {
            if (!tables.TryGetValue(type, out var documented)) continue;
            problems.AddRange(fields.Except(documented).Select(f => $"{type}.{f} is not in its table"));
            problems.AddRange(documented.Except(fields).Select(f => $"{type}.{f} is documented but does not exist"));
            problems.AddRange(documented.GroupBy(f => f).Where(g => g.Count() > 1).Select(g => $"{type}.{g.Key} is documented twice"));
        }
        Assert.True(problems.Count == 0, "docs/context-format.md and the schema differ:\n" + string.Join("\n", problems));
    }

    /// <summary>The test above must see the tables: a change of their markup must not make it pass on nothing.</summary>
    [Fact]
    public void TheFormatDocumentsTablesAreFound()
    {
        var tables = DocumentedTables(Doc("context-format.md"));
        Assert.Contains("pid", tables["ThreadRecord"]);
        Assert.Contains("inetSocket", tables["FileDescriptorKind"]);
        Assert.Contains("recordCount", tables["EndRecordMetadata"]);
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
            .Concat(stateRecords.SelectMany(t => SchemaTypes.JsonProperties(t).Select(SchemaTypes.JsonName)))
            .Distinct();
        var missing = wanted.Where(w => !documented.Contains(w)).ToList();
        Assert.True(missing.Count == 0, "docs/state.md does not mention (in backticks): " + string.Join(", ", missing));
    }
}
