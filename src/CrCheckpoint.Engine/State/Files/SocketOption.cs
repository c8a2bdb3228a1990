using static CrCheckpoint.Engine.Native.Interop;

namespace CrCheckpoint.Engine.State.Files;

/// <summary>An int-sized socket option of a socket the engine holds.</summary>
internal static unsafe class SocketOption
{
    /// <returns>The value, or -1 when the socket does not have the option.</returns>
    public static int Get(int fd, int level, int name)
    {
        int value = 0, length = sizeof(int);
        return getsockopt(fd, level, name, &value, &length) == 0 ? value : -1;
    }
}
