using System.Globalization;
using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Interop;
using DirectPmem.Mapping;

namespace DirectPmem.IntegrationTests;

/// <summary>
/// Bad ranges through the real kernel's sysfs: region0's list for /dev/dax0.0 (through its real
/// resource and mapping0), and the fsdax disk's list for a file on the -o dax mount (through the
/// real st_dev, /sys/dev/block link and ext4's FIEMAP). The guest's platform cannot create a region
/// bad block (qemu has no ACPI error injection), so the listed-bad case writes a sector to the
/// block layer's own <c>/sys/block/pmemX/badblocks</c> (genhd.c's <c>disk_badblocks_store</c>):
/// the same list (<c>pmem->bb</c>) that the pmem driver's DAX access and recovery write consult.
/// </summary>
public sealed class BadBlockTests(ITestOutputHelper output)
{
    [Fact]
    public void The_devdax_device_reports_the_regions_list_as_complete()
    {
        string path = IntegrationEnvironment.RequireDevice();
        DaxDevice device = DaxDevice.Open(path);
        BadRangeReport report = device.GetBadRanges();
        output.WriteLine($"{path}: {report}");
        Assert.Equal(BadRangeCoverage.Complete, report.Coverage);
        Assert.Empty(report.Ranges);
        Assert.Contains($"{device.Region!.Name}/badblocks: 0 range(s)", report.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void An_fsdax_file_finds_its_pmem_disk_and_region_through_sysfs()
    {
        string path = IntegrationEnvironment.NewFile(IntegrationEnvironment.RequireFsDaxDirectory(), "badblocks-clean");
        try
        {
            using PmemFile file = PmemFile.Create(path, 64 * 1024);
            BadRangeReport report = file.GetBadRanges();
            output.WriteLine($"{path}: {report}");
            Assert.Equal(BadRangeCoverage.Complete, report.Coverage);
            // Another test of this class may have listed a sector under its own file: none is under this one.
            Assert.Empty(report.Ranges);
            Assert.Matches(@"^pmem\d+\.\d+/badblocks in region\d+: \d+ range\(s\) on the device", report.Detail);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public unsafe void A_sector_the_kernel_lists_bad_under_an_fsdax_file_is_reported_at_its_file_offset()
    {
        string dir = IntegrationEnvironment.RequireFsDaxDirectory();
        // The file is kept: its blocks stay allocated to it, so no other test can be given the listed sector in this boot.
        string path = IntegrationEnvironment.NewFile(dir, "badblocks-listed");
        using PmemFile file = PmemFile.Create(path, 64 * 1024);
        var extents = new List<FileExtent>();
        Assert.Equal(0, FileExtents.Read(file.Handle.Fd, file.Size, extents));
        FileExtent first = extents[0];
        Assert.True(first.Logical == 0 && first.Length >= 32 * 1024 && first.HasPhysicalAddress, $"first extent {first}");
        Libc.Stat st;
        Assert.Equal(0, Libc.FStat(file.Handle.Fd, &st));
        Assert.Equal(NdBlockDevice.Lookup.Found, NdBlockDevice.Find("/sys", Libc.Major(st.st_dev), Libc.Minor(st.st_dev), out NdBlockDevice? disk, out _));
        long sector = (first.Physical + 16 * 1024) / 512;
        try
        {
            File.WriteAllText(disk!.BadBlocksPath, string.Create(CultureInfo.InvariantCulture, $"{sector} 8\n"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Assert.Skip($"{disk!.BadBlocksPath} cannot be written ({e.Message}): the kernel's list cannot be given an entry here");
        }
        output.WriteLine($"{disk.BadBlocksPath} now: {File.ReadAllText(disk.BadBlocksPath).Trim().Replace('\n', ';')}");
        BadRangeReport report = file.GetBadRanges();
        output.WriteLine($"{path}: {report}");
        Assert.Equal(BadRangeCoverage.Complete, report.Coverage);
        Assert.Equal([new PmemRange(16 * 1024, 4096)], report.Ranges);
        using DaxMapping window = file.Map(new DaxMappingOptions { Offset = 8192, Length = 16384, ReadOnly = true });
        Assert.Equal([new PmemRange(8192, 4096)], window.GetBadRanges().Ranges);
    }

    /// <summary>
    /// Runs in the second boot, after every test that allocates on the fsdax mount: where the
    /// platform cannot clear the media (qemu's NFIT has no clear-error command), the fallback
    /// moves the file's page to a new block and the listed sector goes back to the free space,
    /// where a later allocation in this boot could meet it. The list itself does not survive a
    /// reboot (the kernel rebuilds it from the platform, which lists nothing here).
    /// </summary>
    [Fact]
    public unsafe void Second_boot_clearing_a_listed_sector_under_an_fsdax_file_rewrites_it_and_says_how()
    {
        string dir = IntegrationEnvironment.RequireFsDaxDirectory();
        string path = IntegrationEnvironment.NewFile(dir, "badblocks-clear");
        using PmemFile file = PmemFile.Create(path, 64 * 1024);
        var extents = new List<FileExtent>();
        Assert.Equal(0, FileExtents.Read(file.Handle.Fd, file.Size, extents));
        Libc.Stat st;
        Assert.Equal(0, Libc.FStat(file.Handle.Fd, &st));
        Assert.Equal(NdBlockDevice.Lookup.Found, NdBlockDevice.Find("/sys", Libc.Major(st.st_dev), Libc.Minor(st.st_dev), out NdBlockDevice? disk, out _));
        long sector = (extents[0].Physical + 16 * 1024) / 512;
        try
        {
            File.WriteAllText(disk!.BadBlocksPath, string.Create(CultureInfo.InvariantCulture, $"{sector} 8\n"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Assert.Skip($"{disk!.BadBlocksPath} cannot be written ({e.Message})");
        }
        Assert.Equal([new PmemRange(16 * 1024, 4096)], file.GetBadRanges().Ranges);
        byte[] data = [.. Enumerable.Range(0, 4096).Select(i => (byte)(i * 7))];
        try
        {
            PoisonClearResult result = file.ClearBadRange(16 * 1024, data);
            output.WriteLine($"cleared: {result}; disk list now '{File.ReadAllText(disk.BadBlocksPath).Trim().Replace('\n', ';')}'");
            var after = new List<FileExtent>();
            Assert.Equal(0, FileExtents.Read(file.Handle.Fd, file.Size, after));
            output.WriteLine("extents after: " + string.Join(", ", after));
            Assert.Empty(result.StillListed);
            using DaxMapping map = file.Map(new DaxMappingOptions { Offset = 16 * 1024, Length = 4096, ReadOnly = true });
            Assert.Equal(data, map.GetReadOnlySpan(0, 4096).ToArray());
        }
        catch (PmemException e)
        {
            output.WriteLine($"clear refused: {e.GetType().Name} {e.Call} {e.ErrnoName}: {e.Message}; disk list now '{File.ReadAllText(disk.BadBlocksPath).Trim().Replace('\n', ';')}'");
            throw;
        }
    }
}
