using CrCheckpoint.Engine.State.Files;
using CrCheckpoint.Engine.State.Memory;
using CrCheckpoint.Engine.State.Process;
using CrCheckpoint.Engine.State.Threads;

namespace CrCheckpoint.Engine.Checkpoint;

/// <summary>Everything read from one frozen process, ready to be written (pages are copied while writing).</summary>
public sealed class CapturedProcess
{
    public required ProcessRecord Process { get; init; }
    public required List<ThreadRecord> Threads { get; init; }
    public required MemoryMapRecord Map { get; init; }
    public required List<AreaPlan> Plans { get; init; }
    public required FileTableRecord Files { get; init; }
    public required List<FileToSave> FilesToSave { get; init; }
}
