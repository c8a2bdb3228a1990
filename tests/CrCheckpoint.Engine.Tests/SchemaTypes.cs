using System.Reflection;
using System.Text.Json.Serialization;
using CrCheckpoint.Engine.Schema;

namespace CrCheckpoint.Engine.Tests;

/// <summary>The schema as the tests see it: every type reachable from the record kinds' metadata types, and their JSON properties.</summary>
internal static class SchemaTypes
{
    /// <summary>The metadata types of every record kind, and every class their properties hold, recursively.</summary>
    public static List<Type> Classes() => Reachable().Where(t => t.IsClass).ToList();

    /// <summary>Every enum that a metadata property holds, directly or in a list.</summary>
    public static List<Type> Enums() => Reachable().Where(t => t.IsEnum).ToList();

    public static IEnumerable<PropertyInfo> JsonProperties(Type t) =>
        t.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.GetMethod is not null && (p.SetMethod is not null) && p.GetCustomAttribute<JsonIgnoreAttribute>() is null);

    public static string JsonName(PropertyInfo p) =>
        p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name ?? char.ToLowerInvariant(p.Name[0]) + p.Name[1..];

    public static string JsonName(string enumName) => char.ToLowerInvariant(enumName[0]) + enumName[1..];

    private static List<Type> Reachable()
    {
        var roots = typeof(RecordSchema).GetCustomAttributesData()
            .Where(a => a.AttributeType == typeof(JsonSerializableAttribute))
            .Select(a => (Type)a.ConstructorArguments[0].Value!)
            .Append(typeof(EndRecordMetadata))
            .ToList();
        Assert.NotEmpty(roots);
        var seen = new List<Type>();
        var pending = new Queue<Type>(roots);
        while (pending.Count > 0)
        {
            var t = pending.Dequeue();
            if (seen.Contains(t)) continue;
            seen.Add(t);
            if (!t.IsClass) continue;
            foreach (var p in JsonProperties(t))
                foreach (var inner in Inner(p.PropertyType))
                    if (inner.Assembly == typeof(RecordSchema).Assembly && (inner.IsClass || inner.IsEnum) && !seen.Contains(inner)) pending.Enqueue(inner);
        }
        return seen;
    }

    private static IEnumerable<Type> Inner(Type t)
    {
        yield return t;
        if (t.IsArray) foreach (var x in Inner(t.GetElementType()!)) yield return x;
        foreach (var g in t.IsGenericType ? t.GetGenericArguments() : []) foreach (var x in Inner(g)) yield return x;
    }
}
