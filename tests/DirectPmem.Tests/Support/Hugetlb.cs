using System.Globalization;
using Xunit;

namespace DirectPmem.Tests.Support;

/// <summary>
/// Reserves 2 MiB hugetlb pages for a test (as root) and restores /proc/sys/vm/nr_hugepages on
/// dispose. Tests that use it belong to the <see cref="HugetlbGroup"/> so that no two run at once.
/// </summary>
public sealed class HugetlbReservation : IDisposable
{
    private const string NrHugepages = "/proc/sys/vm/nr_hugepages";
    private readonly long _previous;

    private HugetlbReservation(long previous) => _previous = previous;

    /// <summary>Free 2 MiB pages right now (HugePages_Free in /proc/meminfo).</summary>
    public static long FreePages() => MemInfo("HugePages_Free:");

    /// <summary>
    /// Makes at least <paramref name="pages"/> free 2 MiB pages available, or returns null with the
    /// reason (not root, the kernel could not find contiguous memory).
    /// </summary>
    public static HugetlbReservation? TryReserve(long pages, out string reason)
    {
        reason = "";
        long previous = long.Parse(File.ReadAllText(NrHugepages).Trim(), CultureInfo.InvariantCulture);
        long free = FreePages();
        if (free >= pages)
        {
            return new HugetlbReservation(previous);
        }
        if (!IsRoot())
        {
            reason = $"needs {pages} free 2 MiB hugetlb pages ({free} free) and root to reserve them in {NrHugepages}";
            return null;
        }
        try
        {
            File.WriteAllText(NrHugepages, (previous + pages - free).ToString(CultureInfo.InvariantCulture));
        }
        catch (IOException e)
        {
            reason = $"could not write {NrHugepages}: {e.Message}";
            return null;
        }
        catch (UnauthorizedAccessException e)
        {
            reason = $"could not write {NrHugepages}: {e.Message}";
            return null;
        }
        var reservation = new HugetlbReservation(previous);
        if (FreePages() < pages)
        {
            reason = $"the kernel reserved only {FreePages()} of {pages} 2 MiB pages (memory too fragmented)";
            reservation.Dispose();
            return null;
        }
        return reservation;
    }

    /// <summary>Sets the pool to exactly <paramref name="total"/> pages (as root) and restores it on dispose; null when not root.</summary>
    public static HugetlbReservation? TrySetTotal(long total)
    {
        if (!IsRoot())
        {
            return null;
        }
        long previous = long.Parse(File.ReadAllText(NrHugepages).Trim(), CultureInfo.InvariantCulture);
        File.WriteAllText(NrHugepages, total.ToString(CultureInfo.InvariantCulture));
        return new HugetlbReservation(previous);
    }

    public void Dispose()
    {
        long now = long.Parse(File.ReadAllText(NrHugepages).Trim(), CultureInfo.InvariantCulture);
        if (now != _previous)
        {
            File.WriteAllText(NrHugepages, _previous.ToString(CultureInfo.InvariantCulture));
        }
    }

    public static bool IsRoot() => File.ReadAllLines("/proc/self/status")
        .Any(l => l.StartsWith("Uid:", StringComparison.Ordinal) && l.Split('\t', StringSplitOptions.RemoveEmptyEntries)[2] == "0");

    private static long MemInfo(string key)
    {
        string line = File.ReadAllLines("/proc/meminfo").First(l => l.StartsWith(key, StringComparison.Ordinal));
        return long.Parse(line[key.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
    }
}

/// <summary>Tests that reserve or count hugetlb pages: never in parallel with each other.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class HugetlbGroup
{
    public const string Name = "hugetlb";
}

/// <summary>
/// A writable hugetlbfs with 2 MiB pages for a test: an existing mount when there is one, else (as
/// root) a private mount in a temporary directory, unmounted on dispose.
/// </summary>
public sealed class HugetlbfsMount : IDisposable
{
    private readonly TempDirectory? _private;

    private HugetlbfsMount(string path, TempDirectory? privateDirectory)
    {
        Path = path;
        _private = privateDirectory;
    }

    public string Path { get; }

    public static HugetlbfsMount? TryMount(out string reason)
    {
        reason = "";
        foreach (string line in File.ReadLines("/proc/mounts"))
        {
            string[] f = line.Split(' ');
            if (f.Length > 3 && f[2] == "hugetlbfs" && f[3].StartsWith("rw", StringComparison.Ordinal) && !f[3].Contains("pagesize=1G", StringComparison.Ordinal))
            {
                return new HugetlbfsMount(f[1], null);
            }
        }
        if (!HugetlbReservation.IsRoot())
        {
            reason = "no writable 2 MiB hugetlbfs mount in /proc/mounts, and mounting one needs root";
            return null;
        }
        var dir = new TempDirectory();
        (int code, string error) = Run("mount", "-t", "hugetlbfs", "-o", "pagesize=2M,mode=0700", "none", dir.Path);
        if (code != 0)
        {
            dir.Dispose();
            reason = $"mount -t hugetlbfs failed: {error.Trim()}";
            return null;
        }
        return new HugetlbfsMount(dir.Path, dir);
    }

    public void Dispose()
    {
        if (_private is not null)
        {
            (int code, string error) = Run("umount", _private.Path);
            Assert.True(code == 0, $"umount {_private.Path} failed: {error}");
            _private.Dispose();
        }
    }

    private static (int Code, string Error) Run(string program, params string[] args)
    {
        TestProcess.Result result = TestProcess.Run(program, args);
        return (result.ExitCode, result.Error);
    }
}
