using System.Buffers.Binary;
using System.Reflection;
using System.Text;
using CrCheckpoint.Engine.Format;
using CrCheckpoint.Engine.Schema;

namespace CrCheckpoint.Engine.Tests.Format;

/// <summary>
/// The versioning rules of docs/context-format.md ("Versioning"), one test each: what a newer minor version may add
/// is read; what an older reader must not ignore comes with an incompatible flag; an unknown value or incompatible
/// flag is UnsupportedVersion, never Corrupt.
/// </summary>
public class FormatRulesTests
{
    private static byte[] FileOf(RecordKind kind, string json, int minor)
    {
        byte[] file = ContextFiles.Build([new(kind, RecordFlags.Critical, Encoding.UTF8.GetBytes(json), null)]);
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(10), (ushort)minor);
        return ContextFiles.Reseal(file);
    }

    private static ContextFormatException RefusedMetadata<T>(byte[] file)
    {
        using var reader = new ContextReader(new MemoryStream(file));
        var record = reader.ReadNext()!;
        return Assert.Throws<ContextFormatException>(() => record.GetMetadata<T>());
    }

    /// <summary>Rule 1: a minor version only adds what an older reader may ignore: fields, non-critical kinds, compatible flags.</summary>
    [Fact]
    public void WhatANewerMinorVersionAddsIsIgnored()
    {
        var table = """{"pid":5,"quantumState":{"spin":1},"descriptors":[{"fd":3,"kind":"pipe","later":[1,2]}]}""";
        var records = new List<SampleRecord>
        {
            new(RecordKind.FileTable, RecordFlags.Critical, Encoding.UTF8.GetBytes(table), null),
            new((RecordKind)0x200, RecordFlags.None, "{}"u8.ToArray(), ContextFiles.Bytes(100, seed: 1)),
        };
        byte[] file = ContextFiles.Build(records);
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(10), FormatConstants.MinorVersion + 1);
        file[17] |= 0x40; // compatible bit 14
        ContextFiles.Reseal(file);

        using var reader = new ContextReader(new MemoryStream(file));
        var read = reader.ReadNext()!.GetMetadata<FileTableRecord>();
        Assert.Null(reader.ReadNext());
        Assert.Equal(5, read.Pid);
        Assert.Equal(FileDescriptorKind.Pipe, read.Descriptors[0].Kind);
    }

    /// <summary>
    /// Rule 2: what an older reader must not ignore sets an incompatible flag. This version's writer sets every
    /// incompatible flag it knows of (exact state since 1.2, raw data since 1.3), so that each older reader refuses.
    /// </summary>
    [Fact]
    public void TheWriterSetsTheIncompatibleFlagsOfWhatItWrites()
    {
        byte[] file = ContextFiles.Build(ContextFiles.Small());
        var flags = (FileFlags)BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(16));
        Assert.Equal(FileFlags.KnownIncompatible, flags & FileFlags.IncompatibleMask);
        Assert.Equal(FormatConstants.MinorVersion, BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(10)));
    }

    /// <summary>
    /// Rule 2, for values: a new enum value is something an older reader cannot ignore. The values are pinned here,
    /// so that adding one fails this test until it comes with an incompatible flag (FileFlags) or a new major version
    /// and is listed with the version that added it.
    /// </summary>
    [Fact]
    public void EveryEnumValueIsPinnedToTheFlagThatAddedIt()
    {
        var pinned = new Dictionary<string, string[]>
        {
            // 1.0, and what 1.1 added before this rule held (a 1.0 reader refuses those as Corrupt):
            [nameof(FileDescriptorKind)] =
            [
                "regularFile", "unlinkedFile", "directory", "memfd", "device", "terminal", "pipe", "fifo", "socket",
                "listeningSocket", "inetSocket", "eventFd", "epoll", "timerFd", "signalFd", "inotify", "anonymousInode", "other",
                // 1.2, exact state:
                "unixSocket", "pidFd", "symlink",
            ],
            [nameof(MemoryAreaKind)] =
            [
                "anonymous", "heap", "stack", "privateFile", "sharedFile", "sharedAnonymous", "vdso", "vvar", "vvarVclock", "vsyscall", "special",
            ],
        };
        var actual = SchemaTypes.Enums().ToDictionary(e => e.Name, e => Enum.GetNames(e).Select(SchemaTypes.JsonName).Order().ToArray());
        Assert.Equal(pinned.Keys.Order(), actual.Keys.Order());
        foreach (var (name, values) in pinned)
            Assert.True(values.Order().SequenceEqual(actual[name]),
                $"{name} has values {string.Join(", ", actual[name])}; a new value needs an incompatible flag (FileFlags) and docs/context-format.md, then list it here.");
    }

    public static TheoryData<string, int> EnumsAndMinors()
    {
        var data = new TheoryData<string, int>();
        foreach (var e in SchemaTypes.Enums())
            foreach (int minor in new[] { 0, 1, 2, FormatConstants.MinorVersion, FormatConstants.MinorVersion + 4 })
                data.Add(e.Name, minor);
        return data;
    }

    /// <summary>Rule 3: an unknown value of any enum of the schema, as a name or a number, in a file of any minor version, is UnsupportedVersion.</summary>
    [Theory]
    [MemberData(nameof(EnumsAndMinors))]
    public void AnUnknownEnumValueIsUnsupportedVersion(string enumName, int minor)
    {
        var type = SchemaTypes.Enums().Single(e => e.Name == enumName);
        var read = typeof(RecordInfo).GetMethod(nameof(RecordInfo.GetMetadata))!.MakeGenericMethod(type);
        foreach (var json in new[] { "\"quantumEntangler\"", "4711", "-1" })
        {
            using var reader = new ContextReader(new MemoryStream(FileOf(RecordKind.Thread, json, minor)));
            var record = reader.ReadNext()!;
            var e = Assert.Throws<TargetInvocationException>(() => read.Invoke(record, null)).InnerException;
            var refused = Assert.IsType<ContextFormatException>(e);
            Assert.Equal(ContextFormatError.UnsupportedVersion, refused.Error);
            Assert.Contains("upgrade CrCheckpoint", refused.Message);
        }
        // Known values read, by name in any case (as format 1.0 to 1.2 readers took them) and by number.
        foreach (var value in Enum.GetValues(type))
            foreach (var json in new[] { $"\"{SchemaTypes.JsonName(value.ToString()!)}\"", $"\"{value.ToString()!.ToUpperInvariant()}\"", $"{(int)value}" })
            {
                using var reader = new ContextReader(new MemoryStream(FileOf(RecordKind.Thread, json, minor)));
                Assert.Equal(value, read.Invoke(reader.ReadNext()!, null));
            }
    }

    /// <summary>Rule 3 where it matters: a new kind of descriptor or memory area inside its record.</summary>
    [Theory]
    [InlineData(2)]
    [InlineData(FormatConstants.MinorVersion)]
    [InlineData(FormatConstants.MinorVersion + 4)]
    public void AnUnknownKindInsideARecordIsUnsupportedVersion(int minor)
    {
        var table = FileOf(RecordKind.FileTable, """{"pid":1,"descriptors":[{"fd":3,"kind":"quantumEntangler"}]}""", minor);
        var e = RefusedMetadata<FileTableRecord>(table);
        Assert.Equal(ContextFormatError.UnsupportedVersion, e.Error);
        Assert.Contains("$.descriptors[0].kind", e.Message);
        var map = FileOf(RecordKind.MemoryMap, """{"pid":1,"areas":[{"start":4096,"end":8192,"kind":"holographic"}]}""", minor);
        Assert.Equal(ContextFormatError.UnsupportedVersion, RefusedMetadata<MemoryMapRecord>(map).Error);
    }

    /// <summary>What is not an unknown value but a wrong shape stays Corrupt in a file of this version or older.</summary>
    [Theory]
    [InlineData(2, ContextFormatError.Corrupt)]
    [InlineData(FormatConstants.MinorVersion, ContextFormatError.Corrupt)]
    [InlineData(FormatConstants.MinorVersion + 1, ContextFormatError.UnsupportedVersion)]
    public void AWrongShapeIsCorrupt(int minor, ContextFormatError expected)
    {
        var table = FileOf(RecordKind.FileTable, """{"pid":1,"descriptors":[{"fd":"three","kind":"pipe"}]}""", minor);
        Assert.Equal(expected, RefusedMetadata<FileTableRecord>(table).Error);
        var kind = FileOf(RecordKind.FileTable, """{"pid":1,"descriptors":[{"fd":3,"kind":true}]}""", minor);
        Assert.Equal(expected, RefusedMetadata<FileTableRecord>(kind).Error);
    }

    /// <summary>The writer never writes a value that is not defined: the reader would refuse it.</summary>
    [Fact]
    public void AnUndefinedEnumValueIsNotWritten()
    {
        using var writer = new ContextWriter(new MemoryStream());
        var table = new FileTableRecord { Descriptors = [new FileDescriptorRecord { Kind = (FileDescriptorKind)4711 }] };
        Assert.Throws<ArgumentOutOfRangeException>(() => writer.WriteRecord(RecordKind.FileTable, table));
    }
}
