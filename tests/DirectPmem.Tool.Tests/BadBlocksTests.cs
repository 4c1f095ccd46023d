using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using DirectPmem.Storage;
using DirectPmem.Tool.Tests.Support;
using Xunit;

namespace DirectPmem.Tool.Tests;

/// <summary>
/// dpmem list, info and check show bad ranges in the source's offsets (the badblocks fixture tree
/// for devices; for a pool file, a pmem disk built in a temporary sysfs tree for the device the file
/// lives on, whose list covers every sector), and check --repair rewrites what a program can clear.
/// </summary>
public sealed class BadBlocksTests : IDisposable
{
    private const long PoolSize = 1 << 20;
    private static readonly string s_fixtures = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory,
        "..", "..", "..", "..", "tests", "DirectPmem.Tests", "Fixtures", "sysfs"));
    private readonly string _sys = Directory.CreateTempSubdirectory("dpmem-sys-").FullName;
    // In a directory that proved it is page cache and takes a shared writable mapping (PageCacheProbe), made by the
    // first test that needs it: the temporary directory may be tmpfs and the artifacts folder 9p.
    private string? _dir;

    public void Dispose()
    {
        Directory.Delete(_sys, recursive: true);
        if (_dir is not null)
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [Fact]
    public void ListJsonGivesEachDevicesBadRangesInDeviceOffsets()
    {
        (int code, string output, _) = Dpmem.Run("list", "--json", "--sysfs", Path.Combine(s_fixtures, "badblocks"));
        Assert.Equal(0, code);
        using JsonDocument doc = JsonDocument.Parse(output);
        JsonElement dax0 = doc.RootElement[0].GetProperty("bad_ranges");
        Assert.Equal("complete", dax0.GetProperty("coverage").GetString());
        Assert.Equal([[0, 4096], [0x200000, 4096]], Ranges(dax0));
        JsonElement dax11 = doc.RootElement[1].GetProperty("bad_ranges");
        Assert.Equal([[0, 4096], [0x10100000, 512], [0x1ffff000, 4096]], Ranges(dax11));
    }

    [Fact]
    public void ListTablePrintsTheCountAndTheRanges()
    {
        (int code, string output, _) = Dpmem.Run("list", "--sysfs", Path.Combine(s_fixtures, "badblocks"));
        Assert.Equal(0, code);
        Assert.Contains("dax1.1: 3 bad range(s): [0x0, 0x1000) (4096 bytes), [0x10100000, 0x10100200) (512 bytes), [0x1ffff000, 0x20000000) (4096 bytes)", output, StringComparison.Ordinal);
    }

    [Fact]
    public void ListOfADeviceWithoutARegionSaysThereIsNoList()
    {
        (int code, string output, _) = Dpmem.Run("list", "--json", "--sysfs", Path.Combine(s_fixtures, "good"));
        Assert.Equal(0, code);
        using JsonDocument doc = JsonDocument.Parse(output);
        Assert.Equal("no_list", doc.RootElement[1].GetProperty("bad_ranges").GetProperty("coverage").GetString());
        Assert.Equal("complete", doc.RootElement[0].GetProperty("bad_ranges").GetProperty("coverage").GetString());
    }

    [Fact]
    public void CheckOfAPoolFileOverABadBlockReportsItAndDoesNotReadThePool()
    {
        string path = PoolOnBadDisk();
        (int code, string output, _) = Dpmem.Run("check", path, "--json", "--sysfs", _sys);
        using JsonDocument doc = JsonDocument.Parse(output);
        SkipUnlessPlaced(doc);
        Assert.Equal(2, code);
        JsonElement problem = doc.RootElement.GetProperty("problems").EnumerateArray().First(p => p.GetProperty("area").GetString() == "bad blocks");
        Assert.Contains("[0x0, 0x100000)", problem.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains("recovery write", problem.GetProperty("repair").GetString(), StringComparison.Ordinal);
        Assert.False(doc.RootElement.TryGetProperty("pool", out _), "the pool is not read over a bad range");
        Assert.Contains(doc.RootElement.GetProperty("notes").EnumerateArray(), n => n.GetString()!.Contains("SIGBUS", StringComparison.Ordinal));
    }

    [Fact]
    public void CheckRepairRewritesTheBadRangeAndReportsWhatTheKernelStillLists()
    {
        string path = PoolOnBadDisk();
        (int code, string output, _) = Dpmem.Run("check", path, "--json", "--repair", "--yes", "--sysfs", _sys);
        using JsonDocument doc = JsonDocument.Parse(output);
        SkipUnlessPlaced(doc);
        // The fixture's list does not change when the file is rewritten: the check says so and still does not read the pool.
        Assert.Equal(2, code);
        Assert.Contains(doc.RootElement.GetProperty("repaired").EnumerateArray(), r => r.GetString() == "bad blocks: [0x0, 0x100000) (1048576 bytes) rewritten with zeros (recovery write)");
        Assert.Contains(doc.RootElement.GetProperty("problems").EnumerateArray(), p => p.GetProperty("message").GetString()!.Contains("still listed bad after the rewrite", StringComparison.Ordinal));
        Assert.All(File.ReadAllBytes(path).AsSpan(0, 8192).ToArray(), b => Assert.Equal(0, b));
    }

    [Fact]
    public void InfoOfAPoolFileOverABadBlockShowsTheRangesInsteadOfThePool()
    {
        string path = PoolOnBadDisk();
        (int code, string output, _) = Dpmem.Run("info", path, "--json", "--sysfs", _sys);
        Assert.Equal(0, code);
        using JsonDocument doc = JsonDocument.Parse(output);
        JsonElement bad = doc.RootElement.GetProperty("bad_ranges");
        if (bad.GetProperty("coverage").GetString() == "unknown")
        {
            Assert.Skip("the file's blocks cannot be placed here: " + bad.GetProperty("detail").GetString());
        }
        Assert.Equal([[0, PoolSize]], Ranges(bad));
        Assert.False(doc.RootElement.TryGetProperty("pool", out _));
    }

    [Fact]
    public void CheckRepairOfADeviceDaxDeviceWithBadRangesChangesNothingAndGivesTheOperatorsSteps()
    {
        // A node for 252:0, which the fixture tree says is dax0.0: with bad ranges listed, check never opens it.
        string node = Path.Combine(_sys, "dax0.0");
        var mknod = new ProcessStartInfo("mknod") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string arg in new[] { node, "c", "252", "0" })
        {
            mknod.ArgumentList.Add(arg);
        }
        (int made, _, string why) = Dpmem.Wait(mknod, null, TimeSpan.FromSeconds(30));
        if (made != 0)
        {
            Assert.Skip("a character device node cannot be made here (mknod needs root): " + why.Trim());
        }
        (int code, string output, _) = Dpmem.Run("check", node, "--json", "--repair", "--yes", "--sysfs", Path.Combine(s_fixtures, "badblocks"));
        Assert.Equal(2, code);
        using JsonDocument doc = JsonDocument.Parse(output);
        Assert.Equal("device-dax", doc.RootElement.GetProperty("kind").GetString());
        Assert.Equal([[0, 4096], [0x200000, 4096]], Ranges(doc.RootElement.GetProperty("bad_ranges")));
        JsonElement[] problems = [.. doc.RootElement.GetProperty("problems").EnumerateArray()];
        Assert.Equal(2, problems.Length);
        Assert.All(problems, p => Assert.False(p.TryGetProperty("repair", out _), "device-DAX bad ranges have no repair a program can do"));
        Assert.Empty(doc.RootElement.GetProperty("repaired").EnumerateArray());
        string[] notes = [.. doc.RootElement.GetProperty("notes").EnumerateArray().Select(n => n.GetString()!)];
        Assert.Contains(notes, n => n.Contains("ndctl clear-errors namespace0.0", StringComparison.Ordinal) && n.Contains("ndctl start-scrub", StringComparison.Ordinal));
        Assert.Contains(notes, n => n.Contains("nothing was changed", StringComparison.Ordinal));
    }

    private static long[][] Ranges(JsonElement badRanges)
        => badRanges.GetProperty("ranges").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetInt64()).ToArray()).ToArray();

    private static void SkipUnlessPlaced(JsonDocument doc)
    {
        JsonElement bad = doc.RootElement.GetProperty("bad_ranges");
        if (bad.GetProperty("coverage").GetString() == "unknown")
        {
            Assert.Skip("the file's blocks cannot be placed here: " + bad.GetProperty("detail").GetString());
        }
    }

    /// <summary>A pool file, and a sysfs tree in which the file system's block device is a pmem disk whose every sector is listed bad.</summary>
    private string PoolOnBadDisk()
    {
        (string? pageCache, string why) = PageCacheProbe.Found;
        Assert.SkipWhen(pageCache is null, why);
        _dir ??= Directory.CreateDirectory(Path.Combine(pageCache!, "dpmem-badblocks-" + Guid.NewGuid().ToString("N")[..8])).FullName;
        string path = Path.Combine(_dir, "pool");
        using (TestPools.CreateFile(path, PoolSize, "badblocks"))
        {
        }
        (uint major, uint minor) = DeviceOf(path);
        string region = Path.Combine(_sys, "devices", "ndbus0", "region0");
        string disk = Path.Combine(region, "namespace0.0", "block", "pmem0");
        Directory.CreateDirectory(disk);
        Directory.CreateDirectory(Path.Combine(_sys, "bus", "nd"));
        File.CreateSymbolicLink(Path.Combine(region, "subsystem"), "../../../bus/nd");
        const long Sectors = 1L << 50;
        File.WriteAllText(Path.Combine(disk, "size"), Sectors.ToString(CultureInfo.InvariantCulture));
        File.WriteAllText(Path.Combine(disk, "badblocks"), "0 " + Sectors.ToString(CultureInfo.InvariantCulture) + "\n");
        string dev = Path.Combine(_sys, "dev", "block");
        Directory.CreateDirectory(dev);
        File.CreateSymbolicLink(Path.Combine(dev, $"{major}:{minor}"), Path.GetRelativePath(dev, disk));
        return path;
    }

    // stat(1) prints st_dev as one number; glibc's major()/minor() split it.
    private static (uint Major, uint Minor) DeviceOf(string path)
    {
        var start = new ProcessStartInfo("stat") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("%d");
        start.ArgumentList.Add(path);
        (int code, string output, string error) = Dpmem.Wait(start, null, TimeSpan.FromSeconds(30));
        Assert.True(code == 0, "stat: " + error);
        ulong dev = ulong.Parse(output.Trim(), CultureInfo.InvariantCulture);
        uint major = (uint)(((dev >> 32) & 0xFFFFF000) | ((dev >> 8) & 0xFFF));
        uint minor = (uint)(((dev >> 12) & 0xFFFFFF00) | (dev & 0xFF));
        return (major, minor);
    }
}
