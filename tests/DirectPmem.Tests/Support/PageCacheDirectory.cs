using Xunit;

namespace DirectPmem.Tests.Support;

/// <summary>
/// A private directory for tests that need msync-backed page-cache files, on a directory that has proved it can
/// hold them (<see cref="PageCacheProbe"/>: page cache, not tmpfs or DAX, writable, takes a shared writable
/// mapping). When no candidate passes, the test skips with every candidate's reason.
/// </summary>
/// <remarks>
/// Order: <c>$DIRECTPMEM_PAGECACHE_DIR</c> (used as given; the tests fail loudly if it does not pass the probe),
/// then the test's own output directory (the build's artifacts folder), /var/tmp, $HOME and the temporary directory.
/// </remarks>
public static class PageCacheDirectory
{
    /// <summary>The environment variable that names the directory explicitly.</summary>
    public const string Variable = PageCacheProbe.Variable;

    /// <summary>A fresh private directory on a page-cache file system, or a skip that says why there is none.</summary>
    public static TempDirectory Create()
    {
        (string? root, string reason) = PageCacheProbe.Found;
        if (root is null)
        {
            Assert.Skip(reason);
        }
        return new TempDirectory(root);
    }
}
