using CrCheckpoint.Engine.Proc;

namespace CrCheckpoint.Engine.Tests.Proc;

/// <summary>Every /proc parser on text captured from this kind of machine (kernel 6.18).</summary>
public class ProcParserTests
{
    [Fact]
    public void FdinfoLockLinesOfEveryKind()
    {
        const string text = "pos:\t0\nflags:\t02100002\nmnt_id:\t27\nino:\t11661604\n" +
            "lock:\t1: POSIX  ADVISORY  WRITE 2622 fe:00:11661604 5 14\n" +
            "lock:\t2: POSIX  ADVISORY  READ 2622 fe:00:11661604 100 EOF\n" +
            "lock:\t3: FLOCK  ADVISORY  READ 2622 fe:00:11661605 0 EOF\n" +
            "lock:\t4: OFDLCK ADVISORY  WRITE -1 fe:00:11661606 0 EOF\n" +
            "lock:\t5: LEASE  ACTIVE    READ 2622 fe:00:11661611 0 EOF\n";
        var locks = FdInfo.Parse(text).Locks;
        Assert.Equal(5, locks.Count);
        Assert.Equal(new FileLockLine("POSIX", "ADVISORY", "WRITE", 2622, 5, 14), locks[0]);
        Assert.Equal(new FileLockLine("POSIX", "ADVISORY", "READ", 2622, 100, -1), locks[1]);
        Assert.Equal(new FileLockLine("FLOCK", "ADVISORY", "READ", 2622, 0, -1), locks[2]);
        Assert.Equal(new FileLockLine("OFDLCK", "ADVISORY", "WRITE", -1, 0, -1), locks[3]);
        Assert.Equal(new FileLockLine("LEASE", "ACTIVE", "READ", 2622, 0, -1), locks[4]);
        var info = FdInfo.Parse(text);
        Assert.Equal(0x88002, info.Flags); // octal 02100002: O_CLOEXEC | O_LARGEFILE | O_RDWR
        Assert.Equal(27, info.MountId);
        Assert.Equal(0, info.Position);
        Assert.Null(FileLockLine.Parse("garbage"));
    }

    [Fact]
    public void FdinfoKeysAndRepeatedLines()
    {
        var info = FdInfo.Parse("pos:\t0\nflags:\t02\nmnt_id:\t16\nino:\t1057\ntfd:        5 events:       19 data:                5  pos:0 ino:3 sdev:e\ntfd:        7 events: 80000001 data:         deadbeef  pos:0 ino:4 sdev:e\n");
        Assert.Equal("02", info["flags"]);
        Assert.Null(info["eventfd-count"]);
        Assert.Equal(2, info.All("tfd").Count());
        Assert.StartsWith("7 events: 80000001", info.All("tfd").Last());
    }

    [Fact]
    public void LimitsRowsInResourceOrder()
    {
        const string text = "Limit                     Soft Limit           Hard Limit           Units     \n" +
            "Max cpu time              unlimited            unlimited            seconds   \n" +
            "Max file size             unlimited            unlimited            bytes     \n" +
            "Max data size             unlimited            unlimited            bytes     \n" +
            "Max stack size            8388608              unlimited            bytes     \n" +
            "Max open files            1024                 524288               files     \n";
        var rows = ProcLimits.Parse(text);
        Assert.Equal(5, rows.Count);
        Assert.Equal((ulong.MaxValue, ulong.MaxValue), rows[0]);
        Assert.Equal((8388608UL, ulong.MaxValue), rows[3]);
        Assert.Equal((1024UL, 524288UL), rows[4]);
    }

    [Fact]
    public void MountinfoWithEscapedPaths()
    {
        const string text = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n" +
            "31 22 0:27 /sub /mnt/with\\040space rw,nosuid - tmpfs tmpfs rw\n";
        var mounts = MountLine.Parse(text);
        Assert.Equal(2, mounts.Count);
        Assert.Equal(new MountLine(22, 1, "254:0", "/", "/"), mounts[0]);
        Assert.Equal("/mnt/with space", mounts[1].MountPoint);
        Assert.Equal("/sub", mounts[1].Root);
        Assert.Equal("0:27", mounts[1].Device);
    }

    [Fact]
    public void StatusKeysIdsAndMasks()
    {
        var status = ProcStatus.Parse("Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nTracerPid:\t0\nUid:\t0\t1000\t0\t1000\nGid:\t0\t0\t0\t0\nGroups:\t100 65534 \nThreads:\t3\nSigBlk:\t0000000000010000\nCapEff:\t000001ffffffffff\n");
        Assert.Equal(0x12, status.Umask);
        Assert.Equal(3, status.Threads);
        Assert.Equal(new uint[] { 0, 1000, 0, 1000 }, status.Ids("Uid"));
        Assert.Equal(new uint[] { 100, 65534 }, status.Groups);
        Assert.Equal(0x10000UL, status.Mask("SigBlk"));
        Assert.Equal(0x1ffffffffffUL, status.Mask("CapEff"));
    }

    [Fact]
    public void StatusTracerPid()
    {
        // What the tracing core reads to tell a thread the kernel attached to this tracer on its own.
        var traced = ProcStatus.Parse("Name:\tsleep\nState:\tt (tracing stop)\nTgid:\t4242\nPid:\t4243\nPPid:\t1\nTracerPid:\t31337\nUid:\t0\t0\t0\t0\n");
        Assert.Equal(31337, traced.TracerPid);
        Assert.Equal(0, ProcStatus.Parse("Name:\tsleep\nTracerPid:\t0\n").TracerPid);
    }

    [Fact]
    public void StatWithSpacesAndParenthesesInTheName()
    {
        var fields = string.Join(' ', Enumerable.Range(0, 50).Select(i => (i + 3).ToString()));
        var stat = ProcStat.Parse($"4242 (my (odd) name) T {fields}");
        Assert.Equal("my (odd) name", stat.Comm);
        Assert.Equal('T', stat.State);
        Assert.Equal(3, stat.ParentId);
        Assert.Equal(4, stat.ProcessGroupId);
        Assert.Equal(5, stat.SessionId);
    }

    [Fact]
    public void MapsLinesOfEveryShape()
    {
        var areas = ProcMaps.Parse(
            "55d0c0a00000-55d0c0a02000 r--p 00000000 fe:00 1183904                    /usr/bin/sleep\n" +
            "7f1e2c000000-7f1e2c021000 rw-s 00000000 00:01 2051                       /memfd:shared (deleted)\n" +
            "7ffd1b7e4000-7ffd1b805000 rw-p 00000000 00:00 0                          [stack]\n" +
            "7f1e2c100000-7f1e2c101000 rw-p 00000000 00:00 0 \n");
        Assert.Equal(4, areas.Count);
        Assert.Equal("/usr/bin/sleep", areas[0].Path);
        Assert.Equal("r--p", areas[0].Protection);
        Assert.Equal("rw-s", areas[1].Protection);
        Assert.True(areas[1].IsDeleted);
        Assert.Equal("[stack]", areas[2].Path);
        Assert.Equal(0x21000UL, areas[1].Length);
        Assert.Equal("", areas[3].Path);
    }

    [Fact]
    public void SmapsVmFlagsPerArea()
    {
        var flags = ProcSmaps.ParseFlags(
            "7f1e2c000000-7f1e2c021000 rw-p 00000000 00:00 0 \nSize:                132 kB\nVmFlags: rd wr mr mw me ac dc \n" +
            "7f1e2c100000-7f1e2c101000 r--s 00000000 00:01 7 /memfd:x\nRss: 4 kB\nVmFlags: rd sh mr mw me ms sd \n");
        Assert.Equal(2, flags.Count);
        Assert.Contains("dc", ProcSmaps.At(flags, 0x7f1e2c000100)!);
        Assert.Contains("mw", ProcSmaps.At(flags, 0x7f1e2c100000)!);
        Assert.Null(ProcSmaps.At(flags, 0x1000));
    }

    [Fact]
    public void CgroupLinesOfBothVersions()
    {
        var lines = ProcCgroup.Parse("12:name=zdtmtst:/subcg\n0::/user.slice/session-1.scope\n");
        Assert.Equal(2, lines.Count);
        Assert.Equal(new CgroupLine(12, "name=zdtmtst", "/subcg"), lines[0]);
        Assert.Equal(new CgroupLine(0, "", "/user.slice/session-1.scope"), lines[1]);
    }
}
