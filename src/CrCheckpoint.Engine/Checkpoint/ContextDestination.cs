using System.Text.RegularExpressions;
using CrCheckpoint.Engine.Native;
using Microsoft.Win32.SafeHandles;
using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.Checkpoint;

/// <summary>
/// Where a context file goes and how it replaces what was there (the man page's --atomic, --backup,
/// --clobber, --noclobber, --fd, --sync). Files are created mode 0600 with O_NOFOLLOW|O_EXCL, so no
/// symlink is ever followed and nothing is overwritten in place unless --clobber says so.
/// </summary>
public sealed unsafe class ContextDestination : IDisposable
{
    private readonly ReplacePolicy _policy;
    private readonly string? _backupName;
    private int _fd = -1;
    private int _dirFd = -1;
    private string? _writtenName;   // name inside the directory of the file being written
    private bool _committed;
    private FileStream? _stream;

    private ContextDestination(ReplacePolicy policy, string? backupName)
    {
        _policy = policy;
        _backupName = backupName;
    }

    public Stream Stream => _stream!;
    /// <summary>True when page data can be aligned to file offsets (a regular file).</summary>
    public bool AlignData { get; private set; }
    public bool IsRegularFile { get; private set; }
    public string? FinalPath { get; private set; }
    public string? BackupPath { get; private set; }

    public static ContextDestination Open(CheckpointRequest request, string finalPath)
    {
        var d = new ContextDestination(request.Replace, request.BackupPath is null ? null : Resolve(request.WorkingDirectory, request.BackupPath));
        try
        {
            d.OpenFile(finalPath);
            return d;
        }
        catch
        {
            d.Dispose();
            throw;
        }
    }

    public static ContextDestination OpenDescriptor(int fd)
    {
        var d = new ContextDestination(ReplacePolicy.Atomic, null);
        var copy = dup(fd);
        if (copy == -1)
            throw new CheckpointException(CheckpointFailure.DestinationFailed,
                $"cannot write the checkpoint to descriptor {fd}: {Marshal.GetPInvokeErrorMessage(ErrnoCheck.LastErrno)}. Open it for writing first (for example: 3> file).");
        d._fd = copy;
        Stat st;
        fstat(copy, &st);
        d.IsRegularFile = st.FileType == Stat.S_IFREG;
        d.AlignData = d.IsRegularFile && lseek(copy, 0, SEEK_CUR) % 4096 == 0;
        d._stream = new FileStream(new SafeFileHandle(copy, ownsHandle: false), FileAccess.Write, 1 << 16);
        return d;
    }

    public static string Resolve(string workingDirectory, string path) =>
        System.IO.Path.GetFullPath(System.IO.Path.Combine(workingDirectory, path));

    private void OpenFile(string finalPath)
    {
        FinalPath = finalPath;
        var directory = System.IO.Path.GetDirectoryName(finalPath)!;
        var name = System.IO.Path.GetFileName(finalPath);
        if (name.Length == 0)
            throw new CheckpointException(CheckpointFailure.InvalidRequest, $"'{finalPath}' names a directory, not a context file.");

        _dirFd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
        if (_dirFd == -1)
            throw DestinationError($"cannot open the destination directory {directory}", ErrnoCheck.LastErrno);

        var exists = Exists(name);
        if (exists && !IsReplaceable(name))
            throw new CheckpointException(CheckpointFailure.DestinationFailed,
                $"{finalPath} exists and is not a regular file (a device, directory, FIFO or socket); a context file will not replace it. Choose another -Path, or use -Fd to write to a device or pipe.");
        if (exists && _policy == ReplacePolicy.NoClobber)
            throw new CheckpointException(CheckpointFailure.DestinationExists,
                $"{finalPath} already exists and -NoClobber was given: remove it, choose another -Path, or use -Backup.");

        if (_policy == ReplacePolicy.Clobber)
        {
            if (exists && unlinkat(_dirFd, name, 0) == -1)
                throw DestinationError($"cannot remove the existing {finalPath}", ErrnoCheck.LastErrno);
            _writtenName = name;
        }
        else
        {
            // Short and unrelated to the final name, so that any name the file system accepts works.
            _writtenName = $".crck-{Random.Shared.Next():x8}.tmp";
        }

        _fd = openat(_dirFd, _writtenName, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0x180);
        if (_fd == -1)
        {
            var errno = ErrnoCheck.LastErrno;
            _writtenName = null;
            throw DestinationError($"cannot create a context file in {directory}", errno);
        }
        fchmod(_fd, 0x180); // exactly 0600, whatever the umask
        IsRegularFile = true;
        AlignData = true;
        _stream = new FileStream(new SafeFileHandle(_fd, ownsHandle: false), FileAccess.Write, 1 << 16);
    }

    /// <summary>Only a regular file or a symlink (replaced itself, never followed) may give way to a context file.</summary>
    private bool IsReplaceable(string name)
    {
        Stat st;
        if (fstatat(_dirFd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return true;
        return st.FileType is Stat.S_IFREG or Stat.S_IFLNK;
    }

    private bool Exists(string name)
    {
        Stat st;
        return fstatat(_dirFd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    }

    private static CheckpointException DestinationError(string what, int errno) => new(
        errno == (int)Errno.EEXIST ? CheckpointFailure.DestinationExists : CheckpointFailure.DestinationFailed,
        $"{what}: {Marshal.GetPInvokeErrorMessage(errno)}." + errno switch
        {
            (int)Errno.EACCES or (int)Errno.EPERM or (int)Errno.EROFS => " Choose a -Path in a directory you can write to.",
            (int)Errno.ENOENT => " Create the directory first, or choose another -Path.",
            (int)Errno.ENOSPC => " Free some space or choose another file system.",
            _ => "",
        });

    /// <summary>Flushes what the writer buffered (no fsync yet).</summary>
    public void Flush() => _stream!.Flush();

    /// <summary>Makes the new context file the one at the destination: fsync, back up, rename, fsync the directory.</summary>
    public void Commit(bool sync)
    {
        _stream!.Flush();
        if (sync && fsync(_fd) == -1 && IsRegularFile)
            throw DestinationError($"cannot sync the context file to disk", ErrnoCheck.LastErrno);
        if (_dirFd == -1)
        {
            _committed = true;
            return;
        }

        var name = System.IO.Path.GetFileName(FinalPath)!;
        if (_writtenName != name)
        {
            if (_policy == ReplacePolicy.Backup && Exists(name)) MakeBackup(name);
            var flags = _policy == ReplacePolicy.NoClobber ? RENAME_NOREPLACE : 0;
            if (renameat2(_dirFd, _writtenName!, _dirFd, name, flags) == -1)
                throw DestinationError($"cannot put the context file in place at {FinalPath}", ErrnoCheck.LastErrno);
            _writtenName = name;
        }
        if (sync) fsync(_dirFd);
        _committed = true;
    }

    /// <summary>Keeps the existing file under its backup name (hard link, so the destination is never empty).</summary>
    private void MakeBackup(string name)
    {
        var backup = _backupName ?? NextNumberedBackup(name);
        var backupDir = System.IO.Path.GetDirectoryName(backup)!;
        var backupName = System.IO.Path.GetFileName(backup);
        var dirFd = open(backupDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
        if (dirFd == -1) throw DestinationError($"cannot open the backup directory {backupDir}", ErrnoCheck.LastErrno);
        try
        {
            unlinkat(dirFd, backupName, 0);
            if (linkat(_dirFd, name, dirFd, backupName, 0) == -1)
                throw DestinationError($"cannot back up {FinalPath} as {backup}", ErrnoCheck.LastErrno);
            fsync(dirFd);
        }
        finally { close(dirFd); }
        BackupPath = backup;
    }

    private string NextNumberedBackup(string name)
    {
        var directory = System.IO.Path.GetDirectoryName(FinalPath)!;
        var pattern = new Regex("^" + Regex.Escape(name) + @"\.~(\d+)~$");
        var highest = 0;
        foreach (var entry in System.IO.Directory.EnumerateFileSystemEntries(directory))
        {
            var m = pattern.Match(System.IO.Path.GetFileName(entry));
            if (m.Success && int.TryParse(m.Groups[1].Value, out var n)) highest = Math.Max(highest, n);
        }
        return System.IO.Path.Combine(directory, $"{name}.~{highest + 1}~");
    }

    /// <summary>Removes the partly written file; the file that was at the destination stays (unless --clobber removed it).</summary>
    public void Abort()
    {
        if (_committed || _dirFd == -1 || _writtenName is null) return;
        unlinkat(_dirFd, _writtenName, 0);
        _writtenName = null;
    }

    public void Dispose()
    {
        if (!_committed) Abort();
        _stream?.Dispose();
        if (_fd != -1) close(_fd);
        if (_dirFd != -1) close(_dirFd);
        _fd = _dirFd = -1;
    }
}
