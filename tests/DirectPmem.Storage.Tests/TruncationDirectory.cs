using DirectPmem.Mapping;
using Xunit;

namespace DirectPmem.Storage.Tests;

/// <summary>
/// A fresh directory for a test that truncates a mapped pool file under a poison-safe read (a real SIGBUS,
/// <c>BUS_ADRERR</c>), or a skip naming why there is none: the safe copy is unavailable (without it the
/// read would end the process), or no page-cache directory takes a shared writable mapping
/// (<see cref="PageCacheProbe"/>: on tmpfs a truncated page is not a fault of the same kind everywhere).
/// </summary>
internal static class TruncationDirectory
{
    /// <summary>Creates <c>&lt;page-cache root&gt;/&lt;prefix&gt;&lt;guid&gt;</c>; the caller deletes it.</summary>
    internal static string Create(string prefix)
    {
        if (!DaxMapping.IsReadSafeSupported)
        {
            Assert.Skip("DaxMapping.ReadSafe is unavailable here (it needs x86-64): without it a read of a truncated page raises SIGBUS");
        }
        (string? root, string reason) = PageCacheProbe.Found;
        if (root is null)
        {
            Assert.Skip(reason);
        }
        string dir = Path.Combine(root, prefix + Guid.NewGuid().ToString("n"));
        Directory.CreateDirectory(dir);
        return dir;
    }
}
