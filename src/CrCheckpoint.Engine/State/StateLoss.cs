using CrCheckpoint.Engine.State.Files;

namespace CrCheckpoint.Engine.State;

/// <summary>
/// State a restart cannot give back even though the rest of the process can: connections that
/// waited to be accepted, datagrams or inotify events that waited to be read. By default such a
/// checkpoint is refused (as CRIU refuses in-flight connections); with -AcceptLoss it goes on and
/// every loss is named in the result's messages.
/// </summary>
public static class StateLoss
{
    public static void Check(int pid, FileTableRecord files, bool accept, MessageLog? log)
    {
        foreach (var loss in Losses(files))
        {
            if (!accept)
                throw new UnsupportedStateException(pid, $"{loss}, which a restart cannot give back; checkpoint again later, or with -AcceptLoss to go on without it");
            log?.Add($"process {pid}: {loss}; lost, as -AcceptLoss allows");
        }
    }

    private static IEnumerable<string> Losses(FileTableRecord files)
    {
        foreach (var d in files.Descriptors)
        {
            if (d.Kind == FileDescriptorKind.ListeningSocket && d.PendingConnections > 0)
                yield return $"descriptor {d.Fd} ({d.SocketName}) has {d.PendingConnections} connection(s) waiting to be accepted";
            if (d.Inet is { Waiting: > 0 } inet)
                yield return inet.Listening
                    ? $"descriptor {d.Fd} ({inet.Local}) has {inet.Waiting} connection(s) waiting to be accepted"
                    : $"descriptor {d.Fd} ({inet.Local}) has {inet.Waiting} byte(s) of datagrams waiting to be read";
            if (d.Inotify is { PendingBytes: > 0 } inotify)
                yield return $"descriptor {d.Fd} (inotify) has {inotify.PendingBytes} bytes of events waiting to be read";
        }
    }
}
