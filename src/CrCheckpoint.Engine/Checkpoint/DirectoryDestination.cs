using System.Text.RegularExpressions;
using CrCheckpoint.Engine.Native;
using Microsoft.Win32.SafeHandles;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.Checkpoint;

/// <summary>
/// The man page's --dir: one context.PID file per process in a new directory. The directory is
/// written under a temporary name beside its destination and renamed into place when every file
/// is complete, so it too appears complete or not at all; an existing one is exchanged atomically
/// (--atomic), kept as a backup (--backup), refused (--noclobber) or removed first (--clobber).
/// </summary>
public sealed unsafe class DirectoryDestination : IDisposable
{
    private readonly ReplacePolicy _policy;
    private readonly string? _backupPath;
    private readonly List<(FileStream Stream, int Fd)> _files = new();
    private int _parentFd = -1;
    private int _dirFd = -1;
    private string? _tempName;
    private bool _committed;

    private DirectoryDestination(string finalPath, ReplacePolicy policy, string? backupPath)
    {
        FinalPath = finalPath;
        _policy = policy;
        _backupPath = backupPath;
    }

    public string FinalPath { get; }
    public string? BackupPath { get; private set; }
    public long Bytes => _files.Sum(f => f.Stream.Length);

    private string Parent => Path.GetDirectoryName(FinalPath)!;
    private string Name => Path.GetFileName(FinalPath);

    public static DirectoryDestination Open(CheckpointRequest request)
    {
        var final = ContextDestination.Resolve(request.WorkingDirectory, request.Directory!).TrimEnd('/');
        var d = new DirectoryDestination(final, request.Replace,
            request.BackupPath is null ? null : ContextDestination.Resolve(request.WorkingDirectory, request.BackupPath));
        try
        {
            d.Create();
            return d;
        }
        catch
        {
            d.Dispose();
            throw;
        }
    }

    private void Create()
    {
        _parentFd = open(Parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
        if (_parentFd == -1) throw Error($"cannot open {Parent}", ErrnoCheck.LastErrno);
        var exists = Directory.Exists(FinalPath) || File.Exists(FinalPath);
        if (exists && _policy == ReplacePolicy.NoClobber)
            throw new CheckpointException(CheckpointFailure.DestinationExists,
                $"{FinalPath} already exists and -NoClobber was given: remove it, choose another -Directory, or use -Backup.");
        if (exists && _policy == ReplacePolicy.Clobber) Directory.Delete(FinalPath, recursive: true);

        _tempName = $".{Name}.{Environment.ProcessId}.{Random.Shared.Next():x8}.tmp";
        if (mkdirat(_parentFd, _tempName, 0x1c0) == -1) throw Error($"cannot create a directory in {Parent}", ErrnoCheck.LastErrno);
        _dirFd = openat(_parentFd, _tempName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
        if (_dirFd == -1) throw Error($"cannot open the new directory in {Parent}", ErrnoCheck.LastErrno);
    }

    /// <summary>A new context file in the directory, mode 0600, never following a symlink.</summary>
    public FileStream CreateFile(string name)
    {
        var fd = openat(_dirFd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0x180);
        if (fd == -1) throw Error($"cannot create {name} in {FinalPath}", ErrnoCheck.LastErrno);
        fchmod(fd, 0x180);
        var stream = new FileStream(new SafeFileHandle(fd, ownsHandle: false), FileAccess.Write, 1 << 16);
        _files.Add((stream, fd));
        return stream;
    }

    public void Commit(bool sync)
    {
        foreach (var (stream, fd) in _files)
        {
            stream.Flush();
            if (sync && fsync(fd) == -1) throw Error("cannot sync a context file to disk", ErrnoCheck.LastErrno);
        }
        if (sync) fsync(_dirFd);

        var exists = Directory.Exists(FinalPath);
        if (exists && _policy == ReplacePolicy.Backup)
        {
            var backup = _backupPath ?? NextNumberedBackup();
            if (Directory.Exists(backup)) Directory.Delete(backup, recursive: true);
            Directory.Move(FinalPath, backup);
            BackupPath = backup;
            exists = false;
        }
        if (exists)
        {
            // Swap the new directory and the old one in one step, then remove the old one.
            if (renameat2(_parentFd, _tempName!, _parentFd, Name, 2 /* RENAME_EXCHANGE */) == -1)
                throw Error($"cannot put {FinalPath} in place", ErrnoCheck.LastErrno);
            Directory.Delete(Path.Combine(Parent, _tempName!), recursive: true);
        }
        else if (renameat2(_parentFd, _tempName!, _parentFd, Name, RENAME_NOREPLACE) == -1)
            throw Error($"cannot put {FinalPath} in place", ErrnoCheck.LastErrno);
        _tempName = null;
        if (sync) fsync(_parentFd);
        _committed = true;
    }

    private string NextNumberedBackup()
    {
        var pattern = new Regex("^" + Regex.Escape(Name) + @"\.~(\d+)~$");
        var highest = Directory.EnumerateFileSystemEntries(Parent)
            .Select(e => pattern.Match(Path.GetFileName(e)))
            .Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value)).DefaultIfEmpty(0).Max();
        return Path.Combine(Parent, $"{Name}.~{highest + 1}~");
    }

    private static CheckpointException Error(string what, int errno) => new(
        errno == (int)Errno.EEXIST ? CheckpointFailure.DestinationExists : CheckpointFailure.DestinationFailed,
        $"{what}: {Marshal.GetPInvokeErrorMessage(errno)}.");

    public void Abort()
    {
        if (_committed || _tempName is null) return;
        try { Directory.Delete(Path.Combine(Parent, _tempName), recursive: true); } catch (IOException) { }
        _tempName = null;
    }

    public void Dispose()
    {
        if (!_committed) Abort();
        foreach (var (stream, fd) in _files)
        {
            try { stream.Dispose(); } catch (IOException) { }
            close(fd);
        }
        _files.Clear();
        if (_dirFd != -1) close(_dirFd);
        if (_parentFd != -1) close(_parentFd);
        _dirFd = _parentFd = -1;
    }
}
