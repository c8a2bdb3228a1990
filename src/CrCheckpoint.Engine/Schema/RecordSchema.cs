using System.Text.Json.Serialization;
using CrCheckpoint.Engine.State.Files;
using CrCheckpoint.Engine.State.Memory;
using CrCheckpoint.Engine.State.Process;
using CrCheckpoint.Engine.State.Threads;

namespace CrCheckpoint.Engine.Schema;

/// <summary>
/// The metadata types of every record kind, with their JSON contracts generated at compile time:
/// reflection-built contracts cost tens of milliseconds on first use, and a checkpoint's first use
/// happens while the process is frozen.
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    UseStringEnumConverter = true)]
[JsonSerializable(typeof(ImageRecord))]
[JsonSerializable(typeof(ProcessRecord))]
[JsonSerializable(typeof(ThreadRecord))]
[JsonSerializable(typeof(MemoryMapRecord))]
[JsonSerializable(typeof(MemoryPagesRecord))]
[JsonSerializable(typeof(FileTableRecord))]
[JsonSerializable(typeof(FileContentRecord))]
[JsonSerializable(typeof(PipeDataRecord))]
[JsonSerializable(typeof(SocketDataRecord))]
internal sealed partial class RecordSchema : JsonSerializerContext;
