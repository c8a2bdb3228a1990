using System.Collections.Frozen;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace CrCheckpoint.Engine.Format;

/// <summary>
/// A metadata value this version does not know, such as a kind of descriptor added later: the file needs a newer
/// version of CrCheckpoint (<see cref="ContextFormatError.UnsupportedVersion"/>), it is not damaged.
/// </summary>
internal sealed class UnknownValueException(string message) : JsonException(message);

/// <summary>
/// Enums in record metadata: written as camelCase names; read from a name (in any case, as JsonStringEnumConverter
/// did in format 1.0 to 1.2) or a defined number. Any other name or number is an <see cref="UnknownValueException"/>,
/// so that an unknown value never reads as damage nor, as a number, as an undefined value of the enum.
/// </summary>
internal sealed class SchemaEnumConverterFactory : JsonConverterFactory
{
    public override bool CanConvert(Type typeToConvert) => typeToConvert.IsEnum;

    public override JsonConverter CreateConverter(Type typeToConvert, JsonSerializerOptions options) =>
        (JsonConverter)Activator.CreateInstance(typeof(SchemaEnumConverter<>).MakeGenericType(typeToConvert))!;
}

internal sealed class SchemaEnumConverter<T> : JsonConverter<T> where T : struct, Enum
{
    private static readonly T[] Values = Enum.GetValues<T>();
    private static readonly FrozenDictionary<T, JsonEncodedText> Names =
        Values.Distinct().ToFrozenDictionary(v => v, v => JsonEncodedText.Encode(JsonNamingPolicy.CamelCase.ConvertName(v.ToString())));
    private static readonly FrozenDictionary<string, T> ByName =
        Values.Distinct().ToFrozenDictionary(v => v.ToString(), v => v, StringComparer.OrdinalIgnoreCase);

    public override T Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.String:
            {
                string name = reader.GetString()!;
                if (ByName.TryGetValue(name, out var value)) return value;
                throw new UnknownValueException($"\"{name}\" is no {typeof(T).Name} this version knows.");
            }
            case JsonTokenType.Number:
            {
                if (reader.TryGetInt64(out long number))
                {
                    var value = (T)Enum.ToObject(typeof(T), number);
                    if (Enum.IsDefined(value)) return value;
                }
                throw new UnknownValueException($"{reader.GetDouble()} is no {typeof(T).Name} this version knows.");
            }
            default:
                throw new JsonException($"a {typeof(T).Name} is a name, not {reader.TokenType}.");
        }
    }

    public override void Write(Utf8JsonWriter writer, T value, JsonSerializerOptions options)
    {
        if (!Names.TryGetValue(value, out var name))
            throw new ArgumentOutOfRangeException(nameof(value), value, $"{value} is not a defined {typeof(T).Name}; the context file holds only defined values.");
        writer.WriteStringValue(name);
    }
}
