using DirectPmem.Interop;
using Xunit;

namespace DirectPmem.Tests.Support;

/// <summary>
/// Truncates a file the way another program would, under DirectPmem's lock and its mappings, so a
/// load past the new end raises a real SIGBUS (<c>BUS_ADRERR</c>). Compiled into each test project
/// that truncates a mapped file (DirectPmem.Tests, DirectPmem.Storage.Tests).
/// </summary>
internal static class Truncation
{
    /// <summary>ftruncate through another descriptor (FileStream would take a lock PmemFile holds).</summary>
    internal static void Truncate(string path, long length)
    {
        int fd = Libc.Open(path, Libc.O_RDWR | Libc.O_CLOEXEC, 0);
        Assert.True(fd >= 0, $"open {path}");
        try
        {
            Assert.Equal(0, Libc.FTruncate(fd, length));
        }
        finally
        {
            Libc.Close(fd);
        }
    }
}
