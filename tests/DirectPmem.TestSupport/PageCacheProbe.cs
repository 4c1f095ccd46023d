using System.IO.MemoryMappedFiles;

namespace DirectPmem.TestSupport;

/// <summary>
/// Proves that a directory can hold what page-cache tests need, instead of assuming it from its name: it is on a
/// file system with page-cache writeback (not tmpfs, ramfs, hugetlbfs or the initramfs), not DAX (no <c>dax</c>
/// mount option), writable, and it accepts a shared writable mapping of a file (9p refuses one with EINVAL).
/// </summary>
/// <remarks>
/// In DirectPmem.TestSupport, referenced by every project under tests/ (Directory.Build.targets). The checkout
/// is no such place on every machine: on a 9p share (WSL2's /mnt/c, VM shared folders) the artifacts folder refuses the mapping; /tmp is a
/// tmpfs on Fedora, Arch and Debian 13; /var/tmp may be read-only or DAX.
/// </remarks>
public static class PageCacheProbe
{
    /// <summary>The environment variable that names the directory explicitly.</summary>
    public const string Variable = "DIRECTPMEM_PAGECACHE_DIR";

    private static readonly Lazy<(string? Path, string Reason)> s_found = new(Find);

    /// <summary>The page-cache directory of this run (explicit, or the first candidate that passes), or the reason there is none.</summary>
    public static (string? Path, string Reason) Found => s_found.Value;

    /// <summary>The places tried in order when <see cref="Variable"/> is not set.</summary>
    public static IEnumerable<string?> Candidates()
        => [AppContext.BaseDirectory, "/var/tmp", Environment.GetEnvironmentVariable("HOME"), Path.GetTempPath()];

    private static (string? Path, string Reason) Find()
    {
        string? explicitDirectory = Environment.GetEnvironmentVariable(Variable);
        if (!string.IsNullOrEmpty(explicitDirectory))
        {
            // Named by the user: unusable is an error, not a skip.
            string? problem = Problem(explicitDirectory);
            return problem is null
                ? (explicitDirectory, "")
                : throw new InvalidOperationException($"{Variable}='{explicitDirectory}' is unusable: {problem}.");
        }
        var rejected = new List<string>();
        foreach (string? candidate in Candidates())
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
            rejected.Add($"{candidate} {problem}");
        }
        string reason = $"no writable page-cache directory that takes a shared writable mapping (set {Variable} to one on ext4, xfs or btrfs); tried: " + string.Join("; ", rejected);
        Console.Error.WriteLine("DirectPmem tests: " + reason);
        return (null, reason);
    }

    /// <summary>Why <paramref name="directory"/> cannot hold page-cache test files, or <see langword="null"/> when it can.</summary>
    public static string? Problem(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return "does not exist";
        }
        (string type, string options) = Mount(Path.GetFullPath(directory));
        if (type is "tmpfs" or "ramfs" or "hugetlbfs" or "devtmpfs" or "rootfs")
        {
            return $"is on {type}, which keeps files in memory (no page-cache writeback)";
        }
        string? dax = options.Split(',').FirstOrDefault(o => o is "dax" or "dax=always");
        if (dax is not null)
        {
            return $"is on {type} mounted with {dax}: DAX, not page cache";
        }
        string probe;
        try
        {
            probe = Path.Combine(directory, "directpmem-probe-" + Guid.NewGuid().ToString("N")[..12]);
            Directory.CreateDirectory(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"is not writable ({e.Message})";
        }
        try
        {
            string file = Path.Combine(probe, "map");
            using (var stream = new FileStream(file, FileMode.CreateNew, FileAccess.ReadWrite))
            {
                stream.SetLength(8192);
            }
            // MAP_SHARED with PROT_READ|PROT_WRITE, a store and msync: what the page-cache tests do.
            using MemoryMappedFile map = MemoryMappedFile.CreateFromFile(file, FileMode.Open, null, 8192, MemoryMappedFileAccess.ReadWrite);
            using MemoryMappedViewAccessor view = map.CreateViewAccessor(0, 8192, MemoryMappedFileAccess.ReadWrite);
            view.Write(4096, (byte)1);
            view.Flush();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return $"is on {type}, which refused a shared writable mapping of a file ({e.GetType().Name}: {e.Message})";
        }
        finally
        {
            Directory.Delete(probe, recursive: true);
        }
        return null;
    }

    /// <summary>The file system type and the mount and super-block options of the mount holding <paramref name="path"/>.</summary>
    public static (string Type, string Options) Mount(string path)
    {
        string best = "";
        (string Type, string Options) found = ("unknown", "");
        foreach ((string mountPoint, string type, string options) in Mounts())
        {
            bool contains = mountPoint == "/" || path == mountPoint || path.StartsWith(mountPoint + "/", StringComparison.Ordinal);
            if (contains && mountPoint.Length >= best.Length)
            {
                best = mountPoint;
                found = (type, options);
            }
        }
        return found;
    }

    /// <summary>Every mount of this process, from /proc/self/mountinfo: its mount point, type, and mount plus super-block options.</summary>
    public static IEnumerable<(string MountPoint, string Type, string Options)> Mounts()
    {
        foreach (string line in File.ReadLines("/proc/self/mountinfo"))
        {
            // id parent major:minor root mount-point options [optional...] - fstype source super-options
            string[] fields = line.Split(' ');
            int separator = Array.IndexOf(fields, "-");
            if (fields.Length < 6 || separator < 0 || separator + 1 >= fields.Length)
            {
                continue;
            }
            string super = separator + 3 < fields.Length ? fields[separator + 3] : "";
            yield return (fields[4].Replace("\\040", " ", StringComparison.Ordinal), fields[separator + 1], fields[5] + "," + super);
        }
    }
}
