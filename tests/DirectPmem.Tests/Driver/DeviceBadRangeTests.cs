using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Tests.Fixtures;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Driver;

/// <summary>
/// Region bad blocks placed in device offsets, on the <c>badblocks</c> fixture tree (see its
/// README row): dax0.0 behind an nd dax info block, dax1.1 a dynamic device of two physical ranges.
/// </summary>
public class DeviceBadRangeTests
{
    private const string Region0 = "devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0012:00/ndbus0/region0";
    private const string Region1 = "devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0012:00/ndbus0/region1";
    private static readonly DaxBus s_tree = new(FixturePaths.Sysfs("badblocks"));

    /// <summary>The report of <paramref name="device"/> in a private copy of the tree after <paramref name="change"/> (given the copy's root).</summary>
    private static BadRangeReport After(Action<string> change, string device = "dax0.0")
    {
        using TempDirectory copy = FixtureCopy.Of("badblocks");
        change(copy.Path);
        return new DaxBus(copy.Path).GetDevice(device).GetBadRanges();
    }

    [Fact]
    public void RegionBadBlocksAreTranslatedThroughTheDataOffsetIntoDeviceOffsets()
    {
        BadRangeReport report = s_tree.GetDevice("dax0.0").GetBadRanges();
        Assert.Equal(BadRangeCoverage.Complete, report.Coverage);
        // 20472 16 straddles the device's first byte (0x9ff000..0xa01000 in the region, data at 0xa00000);
        // 24576 8 is 2 MiB into the data; 2048 8 (the info block) and 1069096 8 (the fsdax namespace) are not dax0.0's.
        Assert.Equal([new PmemRange(0, 0x1000), new PmemRange(0x200000, 0x1000)], report.Ranges);
        Assert.Contains("region0/badblocks: 4 range(s)", report.Detail, StringComparison.Ordinal);
        Assert.False(report.IsKnownClean);
        Assert.Equal(0x2000, report.TotalBytes);
        Assert.True(report.Overlaps(0x200fff, 1));
        Assert.False(report.Overlaps(0x201000, 0x1000));
    }

    [Fact]
    public void ABadRangeCrossingTheBoundaryBetweenTwoPhysicalRangesLandsAtBothDeviceOffsets()
    {
        DaxDevice dax = s_tree.GetDevice("dax1.1");
        Assert.Equal(2, dax.Ranges.Count);
        BadRangeReport report = dax.GetBadRanges();
        Assert.Equal(BadRangeCoverage.Complete, report.Coverage);
        // 532472 16: the last 4 KiB of mapping1 (device 0x10000000 + 256 MiB) and the first 4 KiB of mapping0 (device 0);
        // 10240 1: 1 MiB into mapping1; 0 8: the nd dax info block, outside the device.
        Assert.Equal([new PmemRange(0, 0x1000), new PmemRange(0x10100000, 512), new PmemRange(0x1ffff000, 0x1000)], report.Ranges);
        Assert.Contains("2 physical range(s)", report.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void ABadBlockOnlyInTheInfoBlockLeavesTheDeviceClean()
    {
        // The good tree's region0 lists 2048 8: 1 MiB into namespace0.0, before dax0.0's data at 10 MiB.
        BadRangeReport report = new DaxBus(FixturePaths.Sysfs("good")).GetDevice("dax0.0").GetBadRanges();
        Assert.Equal(BadRangeCoverage.Complete, report.Coverage);
        Assert.Empty(report.Ranges);
        Assert.True(report.IsKnownClean);
    }

    [Fact]
    public void ADeviceWithoutAnNvdimmRegionHasNoList()
    {
        BadRangeReport report = new DaxBus(FixturePaths.Sysfs("good")).GetDevice("dax1.0").GetBadRanges();
        Assert.Equal(BadRangeCoverage.NoBadBlockList, report.Coverage);
        Assert.True(report.IsKnownClean);
        Assert.Contains("not on an NVDIMM region", report.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("\n")]
    public void AnEmptyRegionListIsCompleteAndEmpty(string text)
    {
        BadRangeReport report = After(root => File.WriteAllText(Path.Join(root, Region0, "badblocks"), text));
        Assert.Equal(BadRangeCoverage.Complete, report.Coverage);
        Assert.Empty(report.Ranges);
        Assert.True(report.IsKnownClean);
    }

    [Fact]
    public void AnAbsentRegionListIsUnknownNotClean()
    {
        BadRangeReport report = After(root => File.Delete(Path.Join(root, Region0, "badblocks")));
        Assert.Equal(BadRangeCoverage.Unknown, report.Coverage);
        Assert.False(report.IsKnownClean);
        Assert.Contains("badblocks cannot be read", report.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void BadRangesThatCannotBePlacedWithoutTheRegionResourceAreUnknown()
    {
        BadRangeReport report = After(root => File.Delete(Path.Join(root, Region0, "resource")));
        Assert.Equal(BadRangeCoverage.Unknown, report.Coverage);
        Assert.Empty(report.Ranges);
        Assert.Contains("region0/resource (root-only) cannot be read", report.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void BadRangesThatCannotBePlacedWithoutTheDevicesPhysicalRangesAreUnknown()
    {
        BadRangeReport report = After(root =>
        {
            string device = Path.Join(root, Region1, "dax1.0", "dax1.1");
            Directory.Delete(Path.Join(device, "mapping0"), recursive: true);
            Directory.Delete(Path.Join(device, "mapping1"), recursive: true);
            File.Delete(Path.Join(device, "resource"));
        }, "dax1.1");
        Assert.Equal(BadRangeCoverage.Unknown, report.Coverage);
        Assert.Contains("physical ranges", report.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void ASingleRangeDeviceWithoutMappingFilesIsPlacedByItsResource()
    {
        BadRangeReport report = After(root => Directory.Delete(Path.Join(root, Region0, "dax0.0", "dax0.0", "mapping0"), recursive: true));
        Assert.Equal(BadRangeCoverage.Complete, report.Coverage);
        Assert.Equal([new PmemRange(0, 0x1000), new PmemRange(0x200000, 0x1000)], report.Ranges);
    }

    [Theory]
    [InlineData("24576 8\ngarbage")]
    [InlineData("24576 8\n2097152 8")]      // past the 1 GiB region
    [InlineData("24576")]
    [InlineData("24576 0")]
    public void AGarbledListIsUnknownAndNoneOfItIsTrusted(string text)
    {
        using TempDirectory copy = FixtureCopy.Of("badblocks");
        var bus = new DaxBus(copy.Path);
        DaxDevice dax = bus.GetDevice("dax0.0");
        File.WriteAllText(Path.Join(copy.Path, Region0, "badblocks"), text);
        // A scan refuses the region (and so its devices) with a typed error; a device already open reports the list as unknown.
        Assert.Contains(bus.Scan().Errors, e => e.Rule == DaxConfigurationRule.BadBlockSyntax && e.FilePath.EndsWith("region0/badblocks", StringComparison.Ordinal));
        BadRangeReport report = dax.GetBadRanges();
        Assert.Equal(BadRangeCoverage.Unknown, report.Coverage);
        Assert.Empty(report.Ranges);
        Assert.Contains("not trusted", report.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void AListThatFillsAPageMayBeCutShortAndIsUnknown()
    {
        var text = new System.Text.StringBuilder();
        for (int i = 0; text.Length < 4096 - 16; i++)
        {
            text.Append(20480 + (i * 16)).Append(" 8\n");
        }
        BadRangeReport report = After(root => File.WriteAllText(Path.Join(root, Region0, "badblocks"), text.ToString()));
        Assert.True(text.Length < 4096, "the fixture text itself fits a page");
        Assert.Equal(BadRangeCoverage.Unknown, report.Coverage);
        Assert.NotEmpty(report.Ranges);
        Assert.Contains("cut short", report.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void TheListIsReadFreshAtEveryCall()
    {
        using TempDirectory copy = FixtureCopy.Of("badblocks");
        DaxDevice dax = new DaxBus(copy.Path).GetDevice("dax0.0");
        Assert.Equal(2, dax.GetBadRanges().Ranges.Count);
        File.WriteAllText(Path.Join(copy.Path, Region0, "badblocks"), "24576 8\n");
        Assert.Equal([new PmemRange(0x200000, 0x1000)], dax.GetBadRanges().Ranges);
    }

    [Fact]
    public void ClearingADeviceDaxRangeIsRefusedWithWhatIsBadAndTheOperatorsSteps()
    {
        DaxDevice dax = s_tree.GetDevice("dax0.0");
        var error = Assert.Throws<BadBlocksNotClearableException>(() => dax.ClearBadRange(0x200000, 0x1000));
        Assert.Equal([new PmemRange(0x200000, 0x1000)], error.Ranges);
        Assert.Equal("/dev/dax0.0", error.Path);
        Assert.Contains("physical 0x100c00000-0x100c00fff", error.Message, StringComparison.Ordinal);
        Assert.Contains("ndctl clear-errors namespace0.0", error.OperatorSteps, StringComparison.Ordinal);
        Assert.Contains("ndctl start-scrub", error.OperatorSteps, StringComparison.Ordinal);
        Assert.Contains("nothing was changed", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ClearingEveryRangeOfADeviceDaxDeviceIsRefusedNamingThemAll()
    {
        var error = Assert.Throws<BadBlocksNotClearableException>(() => s_tree.GetDevice("dax1.1").ClearBadRanges());
        Assert.Equal(3, error.Ranges.Count);
        Assert.Contains("ndctl clear-errors namespace1.0", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ClearingACleanDeviceDaxDeviceDoesNothing()
    {
        Assert.Empty(new DaxBus(FixturePaths.Sysfs("good")).GetDevice("dax0.0").ClearBadRanges());
    }

    [Theory]
    [InlineData(-4096, 4096, "offset")]
    [InlineData(0, 0, "length")]
    [InlineData(0x1f600000, 4096, "length")]
    public void ADeviceClearOutsideTheDeviceIsRefusedNamingTheArgument(long offset, long length, string parameter)
    {
        var error = Assert.ThrowsAny<ArgumentOutOfRangeException>(() => s_tree.GetDevice("dax0.0").ClearBadRange(offset, length));
        Assert.Equal(parameter, error.ParamName);
    }
}
