namespace CrCheckpoint.Engine.Schema;

/// <summary>The Image record, first in every context file: what was checkpointed, where and when.</summary>
public sealed class ImageRecord
{
    public string Tool { get; init; } = "CrCheckpoint";
    public string ToolVersion { get; init; } = "";
    public DateTimeOffset CreatedUtc { get; init; }
    public string Hostname { get; init; } = "";
    public string KernelRelease { get; init; } = "";
    public string Architecture { get; init; } = "x86_64";
    public int PageSize { get; init; } = 4096;
    public string Scope { get; init; } = "";
    public int RequestedId { get; init; }
    public int[] ProcessIds { get; init; } = [];
    public string SaveMappedFiles { get; init; } = "";
}
