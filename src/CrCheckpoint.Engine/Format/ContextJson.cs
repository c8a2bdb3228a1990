using System.Text.Json;
using System.Text.Json.Serialization;

namespace CrCheckpoint.Engine.Format;

/// <summary>The one JSON configuration for record metadata, so that every writer and reader agree on it.</summary>
public static class ContextJson
{
    /// <summary>
    /// camelCase names, enums as camelCase strings (an unknown one is <see cref="UnknownValueException"/>), byte arrays
    /// as raw data beside the JSON (<see cref="RawDataConverter"/>), no indentation, nulls omitted. Unknown properties
    /// are ignored when reading, which is what lets a minor version add metadata fields. The instance is read-only.
    /// </summary>
    public static JsonSerializerOptions Options { get; } = Create();

    private static JsonSerializerOptions Create()
    {
        var options = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
            DictionaryKeyPolicy = null,
            WriteIndented = false,
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
            PropertyNameCaseInsensitive = false,
            NumberHandling = JsonNumberHandling.Strict,
        };
        options.Converters.Add(new SchemaEnumConverterFactory());
        options.Converters.Add(new RawDataConverter());
        options.TypeInfoResolver = System.Text.Json.Serialization.Metadata.JsonTypeInfoResolver.Combine(
            Schema.RecordSchema.Default, new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver());
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }
}
