using System.Text.Json;
using System.Text.Json.Serialization;

namespace CrCheckpoint.Engine.Format;

/// <summary>
/// The bytes of every <c>byte[]</c> in one record's metadata, laid out back to back as that record's data (since 1.3,
/// <see cref="FileFlags.RawData"/>): bulk state such as XSAVE areas, TCP queues and BPF programs stays raw and
/// checksummed like all data instead of growing by a third as base64 inside the JSON. The writer collects the arrays
/// here while it serializes; the arrays are not copied.
/// </summary>
internal sealed class RawDataSink
{
    private readonly List<byte[]> _parts = [];

    public IReadOnlyList<byte[]> Parts => _parts;

    /// <summary>Bytes collected so far: the offset the next array gets.</summary>
    public long Length { get; private set; }

    /// <summary>Whether an array was collected, even an empty one: then the metadata holds references.</summary>
    public bool Any => _parts.Count > 0;

    public long Add(byte[] bytes)
    {
        long offset = Length;
        _parts.Add(bytes);
        Length += bytes.Length;
        return offset;
    }

    public void Clear()
    {
        _parts.Clear();
        Length = 0;
    }
}

/// <summary>
/// How a <c>byte[]</c> of record metadata is written and read. While a <see cref="ContextWriter"/> serializes, it is a
/// reference <c>{"offset":O,"length":L}</c> into the record's raw data; while a record of a file with raw data is read,
/// only such references are accepted and resolved from the record's data; in older files (and outside a writer or
/// reader) it is a base64 string, as in format 1.0 to 1.2. The code that fills and reads the properties sees a
/// <c>byte[]</c> either way.
/// </summary>
/// <remarks>
/// The mode travels in thread-static fields because <see cref="ContextJson.Options"/> is one shared, read-only
/// instance; serialization is synchronous, so a scope never spans threads.
/// </remarks>
internal sealed class RawDataConverter : JsonConverter<byte[]>
{
    [ThreadStatic] private static RawDataSink? t_sink;
    [ThreadStatic] private static bool t_references;
    [ThreadStatic] private static byte[]? t_data;

    private static readonly JsonEncodedText OffsetName = JsonEncodedText.Encode("offset");
    private static readonly JsonEncodedText LengthName = JsonEncodedText.Encode("length");

    /// <summary>Within the scope, arrays go to <paramref name="sink"/> and are written as references.</summary>
    public static Scope Writing(RawDataSink sink)
    {
        var scope = new Scope(t_sink, t_references, t_data);
        t_sink = sink;
        return scope;
    }

    /// <summary>
    /// Within the scope, arrays are read as references into <paramref name="data"/> (when <paramref name="references"/>:
    /// a file with raw data, whose records without raw data have none) or as base64 strings (older files).
    /// </summary>
    public static Scope Reading(bool references, byte[]? data)
    {
        var scope = new Scope(t_sink, t_references, t_data);
        t_sink = null;
        t_references = references;
        t_data = data;
        return scope;
    }

    public override bool HandleNull => false;

    public override byte[] Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (!t_references)
        {
            if (reader.TokenType != JsonTokenType.String)
                throw new JsonException($"a byte array is a base64 string in this format version, not {reader.TokenType}.");
            return reader.GetBytesFromBase64();
        }
        if (reader.TokenType != JsonTokenType.StartObject)
            throw new JsonException($"a byte array is a reference {{\"offset\",\"length\"}} into the record's data in this format version, not {reader.TokenType}.");
        long offset = -1, length = -1;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            bool isOffset = reader.ValueTextEquals(OffsetName.EncodedUtf8Bytes);
            bool isLength = !isOffset && reader.ValueTextEquals(LengthName.EncodedUtf8Bytes);
            if (!isOffset && !isLength)
                throw new JsonException("a reference to raw data has a property other than offset and length.");
            reader.Read();
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out long value) || value < 0)
                throw new JsonException("a reference to raw data has an offset or length that is not a non-negative integer.");
            if (isOffset) offset = value; else length = value;
        }
        if (offset < 0 || length < 0)
            throw new JsonException("a reference to raw data lacks its offset or its length.");
        var data = t_data ?? [];
        if (offset > data.Length || length > data.Length - offset)
            throw new JsonException($"a reference to raw data ({offset}, {length}) points outside the record's {data.Length} bytes of data.");
        return data.AsSpan((int)offset, (int)length).ToArray();
    }

    public override void Write(Utf8JsonWriter writer, byte[] value, JsonSerializerOptions options)
    {
        if (t_sink is not { } sink)
        {
            writer.WriteBase64StringValue(value);
            return;
        }
        long offset = sink.Add(value);
        writer.WriteStartObject();
        writer.WriteNumber(OffsetName, offset);
        writer.WriteNumber(LengthName, value.Length);
        writer.WriteEndObject();
    }

    /// <summary>Puts back the mode that was in force before, so scopes nest.</summary>
    public readonly struct Scope(RawDataSink? sink, bool references, byte[]? data) : IDisposable
    {
        public void Dispose()
        {
            t_sink = sink;
            t_references = references;
            t_data = data;
        }
    }
}
