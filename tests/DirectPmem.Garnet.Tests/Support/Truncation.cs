using System.Runtime.InteropServices;
using Xunit;

namespace DirectPmem.Garnet.Tests.Support;

/// <summary>
/// Truncates a file by path the way another program would, under DirectPmem's lock and its
/// mappings, so a load past the new end raises a real SIGBUS (<c>BUS_ADRERR</c>).
/// </summary>
internal static partial class Truncation
{
    internal static void Truncate(string path, long length)
    {
        int result = TruncateByPath(path, length);
        Assert.True(result == 0, $"truncate({path}, {length}) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    [LibraryImport("libc", EntryPoint = "truncate", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int TruncateByPath(string path, long length);
}
