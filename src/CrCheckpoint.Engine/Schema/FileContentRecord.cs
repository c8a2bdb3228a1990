namespace CrCheckpoint.Engine.Schema;

/// <summary>Metadata of a FileContent record; its data is the whole file.</summary>
public sealed class FileContentRecord
{
    public string Key { get; init; } = "";
    public string Path { get; init; } = "";
    public FileIdentity Identity { get; init; } = new();
    /// <summary>Why the file travels: "unlinked", "save-exe", "save-private", "save-shared", or "shmem" for
    /// shared memory (memfd, MAP_SHARED|MAP_ANONYMOUS, System V) which is restored as one object.</summary>
    public string Reason { get; init; } = "";
    /// <summary>
    /// For sparse objects: pairs [offset, length] in bytes of the ranges that hold data; the data is
    /// those ranges back to back and the rest of the file (identity.size) is holes. Absent: the whole file.
    /// </summary>
    public long[][]? Runs { get; init; }
    /// <summary>Shared memory only: the seals (F_GET_SEALS) of the object; null in older files.</summary>
    public int? Seals { get; init; }
    /// <summary>Shared memory only: the object's owner and group, given back with its mode; null in older files.</summary>
    public uint? Owner { get; init; }
    public uint? Group { get; init; }
}
