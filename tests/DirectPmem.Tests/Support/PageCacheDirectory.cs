using Xunit;

namespace DirectPmem.Tests.Support;

/// <summary>
/// Finds a writable directory on a page-cache file system (ext4, xfs, btrfs, overlay...) for tests that
/// need msync-backed files. The temporary directory is no such place on every machine: /tmp is a tmpfs on
/// Fedora, Arch and Debian 13, and /var/tmp may be read-only.
/// </summary>
/// <remarks>
/// Order: <c>$DIRECTPMEM_PAGECACHE_DIR</c> (used as given, and the tests fail loudly if it is not a writable
/// page-cache directory), then the test's own output directory (the build's artifacts folder), /var/tmp,
/// $HOME and the temporary directory. The first writable candidate on a file system that is not tmpfs,
/// ramfs or hugetlbfs wins; when there is none, tests skip with the reason.
/// </remarks>
public static class PageCacheDirectory
{
    /// <summary>The environment variable that names the directory explicitly.</summary>
    public const string Variable = "DIRECTPMEM_PAGECACHE_DIR";

    private static readonly Lazy<(string? Path, string Reason)> s_found = new(Find);

    /// <summary>A fresh private directory on a page-cache file system, or a skip that says why there is none.</summary>
    public static TempDirectory Create()
    {
        (string? root, string reason) = s_found.Value;
        if (root is null)
        {
            Assert.Skip(reason);
        }
        return new TempDirectory(root);
    }

    private static (string? Path, string Reason) Find()
    {
        string? explicitDirectory = Environment.GetEnvironmentVariable(Variable);
        if (!string.IsNullOrEmpty(explicitDirectory))
        {
            string? problem = Problem(explicitDirectory);
            if (problem is not null)
            {
                throw new InvalidOperationException($"{Variable}='{explicitDirectory}' is unusable: {problem}.");
            }
            return (explicitDirectory, "");
        }

        var rejected = new List<string>();
        string? home = Environment.GetEnvironmentVariable("HOME");
        foreach (string? candidate in new[] { AppContext.BaseDirectory, "/var/tmp", home, Path.GetTempPath() })
        {
            if (string.IsNullOrEmpty(candidate))
            {
                continue;
            }
            string? problem = Problem(candidate);
            if (problem is null)
            {
                return (candidate, "");
            }
            rejected.Add($"{candidate}: {problem}");
        }
        return (null, $"no writable page-cache directory (set {Variable}); tried " + string.Join("; ", rejected));
    }

    private static string? Problem(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return "does not exist";
        }
        string type = FileSystemType(Path.GetFullPath(directory));
        if (type is "tmpfs" or "ramfs" or "hugetlbfs" or "devtmpfs")
        {
            return $"is on {type}, which has no page-cache writeback";
        }
        try
        {
            Directory.Delete(TempDirectory.CreateBelow(directory, "directpmem-probe-"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"is not writable ({e.Message})";
        }
        return null;
    }

    /// <summary>The file system type of the mount that holds <paramref name="path"/>, from /proc/self/mountinfo.</summary>
    internal static string FileSystemType(string path)
    {
        string best = "";
        string type = "unknown";
        foreach (string line in File.ReadLines("/proc/self/mountinfo"))
        {
            // id parent major:minor root mount-point options [optional...] - fstype source super-options
            string[] fields = line.Split(' ');
            int separator = Array.IndexOf(fields, "-");
            if (fields.Length < 5 || separator < 0 || separator + 1 >= fields.Length)
            {
                continue;
            }
            string mountPoint = fields[4].Replace("\\040", " ", StringComparison.Ordinal);
            bool contains = mountPoint == "/" || path == mountPoint || path.StartsWith(mountPoint + "/", StringComparison.Ordinal);
            if (contains && mountPoint.Length >= best.Length)
            {
                best = mountPoint;
                type = fields[separator + 1];
            }
        }
        return type;
    }
}
