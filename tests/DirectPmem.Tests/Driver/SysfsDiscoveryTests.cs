using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Interop;
using DirectPmem.Mapping;
using DirectPmem.Tests.Fixtures;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Driver;

public class SysfsDiscoveryTests
{
    private const long Mib2 = 2 * 1024 * 1024;
    private const long Gib1 = 1024L * 1024 * 1024;
    private static readonly DaxBus s_good = new(FixturePaths.Sysfs("good"));

    [Fact]
    public void GoodTreeYieldsThreeDevicesTwoRegionsAndNoErrors()
    {
        DaxTopology topology = s_good.Scan();
        Assert.Empty(topology.Errors);
        Assert.Equal(["dax0.0", "dax1.0", "dax2.0"], topology.Devices.Select(d => d.Name));
        Assert.Equal(["region0", "region1"], topology.Regions.Select(r => r.Name));
    }

    [Fact]
    public void PmemDeviceReportsTheRealAttributesOfTheQemuGuest()
    {
        DaxDevice dax = s_good.GetDevice("dax0.0");
        Assert.Equal(526385152, dax.Size);
        Assert.Equal(PageSize.Pmd, dax.Align);
        Assert.Equal(0, dax.TargetNode);
        Assert.Equal(0, dax.NumaNode);
        Assert.Equal("/dev/dax0.0", dax.DevicePath);
        Assert.Equal(252u, dax.Major);
        Assert.Equal(0u, dax.Minor);
        Assert.Equal("devdax", dax.Mode);
        Assert.False(dax.IsEmulated);
        Assert.Equal(MappingBacking.DeviceDax, dax.Backing);
        Assert.Equal(PageSize.Pmd, dax.FaultGranularity);
        Assert.Equal(0x100a00000UL, dax.Resource);
        Assert.Equal(Mib2, dax.RegionAlign);
        DaxDeviceRange range = Assert.Single(dax.Ranges);
        Assert.Equal(0x100a00000UL, range.Start);
        Assert.Equal(0x11fffffffUL, range.End);
        Assert.Equal(0, range.DeviceOffset);
        Assert.Equal(dax.Size, range.Length);
        Assert.NotNull(dax.Region);
        Assert.Equal("region0", dax.Region.Name);
        Assert.Equal(DaxPersistence.MemoryController, dax.Persistence);
    }

    [Fact]
    public void RegionReportsAdrOneBadBlockAndDeepFlush()
    {
        DaxRegion region = s_good.GetRegions()[0];
        Assert.Equal(0, region.Id);
        Assert.Equal(Gib1, region.Size);
        Assert.Equal(16L * 1024 * 1024, region.Align);
        Assert.Equal(DaxPersistence.MemoryController, region.PersistenceDomain);
        Assert.Equal("memory_controller", region.PersistenceDomainText);
        PmemRange bad = Assert.Single(region.BadBlocks);
        Assert.Equal(new PmemRange(2048 * 512, 8 * 512), bad);
        Assert.True(region.DeepFlushPresent);
        Assert.Equal(0x100000000UL, region.Resource);
        Assert.Equal(0, region.NumaNode);
    }

    [Fact]
    public void SoftReservedDeviceHasNoRegionAndUnknownPersistence()
    {
        DaxDevice dax = s_good.GetDevice("dax1.0");
        Assert.Null(dax.Region);
        Assert.Equal(DaxPersistence.Unknown, dax.Persistence);
        Assert.Equal(1, dax.TargetNode);
        Assert.Equal(-1, dax.NumaNode);
        Assert.Null(dax.Resource);
        Assert.Null(dax.RegionAlign);
        Assert.Equal(Gib1, Assert.Single(dax.Ranges).Length);
    }

    [Fact]
    public void GigabyteAlignedDeviceHasTwoContiguousRangesInAnEadrRegion()
    {
        DaxDevice dax = s_good.GetDevice("dax2.0");
        Assert.Equal(PageSize.Pud, dax.Align);
        Assert.Equal(2 * Gib1, dax.Size);
        Assert.Equal([0L, Gib1], dax.Ranges.Select(m => m.DeviceOffset));
        Assert.Equal("region1", dax.Region?.Name);
        Assert.Equal(DaxPersistence.CpuCache, dax.Persistence);
        DaxRegion region1 = s_good.GetRegions()[1];
        Assert.Empty(region1.BadBlocks);
        Assert.False(region1.DeepFlushPresent);
    }

    [Theory]
    [InlineData("missing-size", DaxConfigurationRule.MissingAttribute, "dax0.0/size")]
    [InlineData("align-not-numeric", DaxConfigurationRule.NotANumber, "dax0.0/align")]
    [InlineData("align-not-power-of-two", DaxConfigurationRule.NotAPowerOfTwo, "dax0.0/align")]
    [InlineData("align-not-page-size", DaxConfigurationRule.NotAPageSize, "dax0.0/align")]
    [InlineData("mappings-overlap", DaxConfigurationRule.RangesOverlap, "dax0.0/mapping1/start")]
    [InlineData("mapping-unaligned", DaxConfigurationRule.Unaligned, "dax0.0/mapping0/start")]
    [InlineData("mappings-do-not-add-up", DaxConfigurationRule.RangesDoNotAddUp, "dax0.0/size")]
    public void BrokenTreeYieldsATypedErrorNamingTheFileAndNoDevice(string tree, DaxConfigurationRule rule, string file)
    {
        var bus = new DaxBus(FixturePaths.Sysfs(tree));
        DaxTopology topology = bus.Scan();
        Assert.Empty(topology.Devices);
        DaxConfigurationException error = Assert.Single(topology.Errors);
        Assert.Equal(rule, error.Rule);
        Assert.EndsWith(file, error.FilePath, StringComparison.Ordinal);
        Assert.Contains(file, error.Message, StringComparison.Ordinal);

        var thrown = Assert.Throws<DaxConfigurationException>(() => bus.GetDevice("dax0.0"));
        Assert.Equal(rule, thrown.Rule);
        Assert.Throws<DaxConfigurationException>(() => bus.GetDevices());
    }

    [Fact]
    public void CharacterDeviceIsIdentifiedThroughItsSubsystemLink()
    {
        Assert.Equal("dax2.0", s_good.IdentifyCharDevice(252, 2).Name);
        var notDax = Assert.Throws<DaxConfigurationException>(() => s_good.IdentifyCharDevice(1, 3));
        Assert.Equal(DaxConfigurationRule.NotDeviceDax, notDax.Rule);
        Assert.Contains("'mem'", notDax.Message, StringComparison.Ordinal);
        var unknown = Assert.Throws<DaxConfigurationException>(() => s_good.IdentifyCharDevice(9, 99));
        Assert.Equal(DaxConfigurationRule.NotDeviceDax, unknown.Rule);
    }

    [Fact]
    public void OpeningDevNullOrARegularFileAsDeviceDaxIsRefused()
    {
        var devNull = Assert.Throws<DaxConfigurationException>(() => s_good.OpenCharDevice("/dev/null"));
        Assert.Equal(DaxConfigurationRule.NotDeviceDax, devNull.Rule);
        using var temp = new TempDirectory();
        File.WriteAllBytes(temp.File("plain"), [1, 2, 3]);
        var plain = Assert.Throws<DaxConfigurationException>(() => s_good.OpenCharDevice(temp.File("plain")));
        Assert.Equal(DaxConfigurationRule.NotDeviceDax, plain.Rule);
        Assert.Equal(temp.File("plain"), plain.FilePath);
    }

    [Fact]
    public void UnknownDeviceNameIsRefused()
    {
        var error = Assert.Throws<DaxConfigurationException>(() => s_good.GetDevice("dax9.9"));
        Assert.Equal(DaxConfigurationRule.NoSuchDevice, error.Rule);
        Assert.Equal(DaxConfigurationRule.NoSuchDevice, Assert.Throws<DaxConfigurationException>(() => s_good.GetDevice("../../dax/devices/dax0.0")).Rule);
        Assert.Equal(DaxConfigurationRule.NoSuchDevice, Assert.Throws<DaxConfigurationException>(() => s_good.GetDevice("region0")).Rule);
    }

    [Fact]
    public void DevicePathFollowsTheDeviceRootAndAMissingNodeFailsAtOpen()
    {
        using var temp = new TempDirectory();
        var bus = new DaxBus(FixturePaths.Sysfs("good"), temp.Path);
        DaxDevice dax = bus.GetDevice("dax0.0");
        Assert.Equal(Path.Combine(temp.Path, "dax0.0"), dax.DevicePath);
        var error = Assert.Throws<PmemNotFoundException>(() => dax.Map());
        Assert.Equal("open(O_RDWR)", error.Call);
    }

    [Fact]
    public void WholeDevicePlanUsesMapSyncAndTheDeviceAlign()
    {
        DaxDevice dax = s_good.GetDevice("dax0.0");
        var plan = dax.Plan(0, dax.Size, dax.Align, DaxMappingOptions.Default, "dax0.0");
        Assert.Equal(Libc.MAP_SHARED_VALIDATE | Libc.MAP_SYNC, plan.ExtraFlags);
        Assert.Equal(MappingBacking.DeviceDax, plan.Backing);
        Assert.Equal(PageSize.Pmd, plan.PageSize);
        Assert.Equal(0, plan.DeviceOffset);
        Assert.Equal(dax.Size, plan.Length);
    }

    [Theory]
    [InlineData(4096L, Mib2, "Offset")]
    [InlineData(Mib2 - 4096, Mib2, "Offset")]
    [InlineData(Mib2 + 4096, Mib2, "Offset")]
    [InlineData(0L, 4096L, "Length")]
    [InlineData(0L, Mib2 - 4096, "Length")]
    [InlineData(0L, Mib2 + 4096, "Length")]
    public void PlanRefusesRangesNotAlignedToTheDeviceAlign(long offset, long length, string param)
    {
        DaxDevice dax = s_good.GetDevice("dax0.0");
        var error = Assert.Throws<ArgumentException>(() =>
            dax.Plan(0, dax.Size, dax.Align, new DaxMappingOptions { Offset = offset, Length = length }, "dax0.0"));
        Assert.Equal(param, error.ParamName);
    }

    [Fact]
    public void PlanRefusesRangesPastTheSysfsSize()
    {
        DaxDevice dax = s_good.GetDevice("dax0.0");
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            dax.Plan(0, dax.Size, dax.Align, new DaxMappingOptions { Offset = dax.Size - Mib2, Length = 2 * Mib2 }, "dax0.0"));
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            dax.Plan(0, dax.Size, dax.Align, new DaxMappingOptions { Offset = dax.Size, Length = Mib2 }, "dax0.0"));
        var last = dax.Plan(0, dax.Size, dax.Align, new DaxMappingOptions { Offset = dax.Size - Mib2, Length = Mib2 }, "dax0.0");
        Assert.Equal(dax.Size - Mib2, last.DeviceOffset);
    }

    [Fact]
    public void PlanRefusesAPageSizeBelowTheAlignAndARequiredSizeTheDeviceDoesNotFault()
    {
        DaxDevice dax = s_good.GetDevice("dax0.0");
        Assert.Throws<ArgumentException>(() =>
            dax.Plan(0, dax.Size, dax.Align, new DaxMappingOptions { PageSize = PageSize.Pte }, "dax0.0"));
        // A 1 GiB window does not fit this 502 MiB device: refused before any page-size question.
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            dax.Plan(0, Gib1, dax.Align, new DaxMappingOptions { PageSize = PageSize.Pud, RequirePageSize = true }, "dax0.0"));
        var required = dax.Plan(0, dax.Size, dax.Align, new DaxMappingOptions { RequirePageSize = true }, "dax0.0");
        Assert.Equal(PageSize.Pmd, required.PageSize);
    }

    [Theory]
    [InlineData("12")]
    [InlineData("a 8")]
    [InlineData("0 0")]
    [InlineData("2097152 1")]
    [InlineData("2097150 8")]
    public void BadBlockLinesThatAreMalformedOrOutsideTheRegionAreRefused(string line)
    {
        var error = Assert.Throws<DaxConfigurationException>(() => DaxRegion.ParseBadBlocks("badblocks", line, Gib1));
        Assert.Equal(DaxConfigurationRule.BadBlockSyntax, error.Rule);
    }

    [Fact]
    public void BadBlockLinesAreReadAsByteRanges()
    {
        var ranges = DaxRegion.ParseBadBlocks("badblocks", "0 1\n2097144 8\n", Gib1);
        Assert.Equal([new PmemRange(0, 512), new PmemRange(Gib1 - 4096, 4096)], ranges);
    }

    [Fact]
    public void ScanOfTheRunningKernelNeverThrowsAndMapsARealDeviceWhenThereIsOne()
    {
        DaxTopology topology = DaxBus.Default.Scan();
        DaxDevice? dax = topology.Devices.FirstOrDefault(d => d.Mode == "devdax" && File.Exists(d.DevicePath));
        if (dax is null)
        {
            Assert.Skip($"no device-DAX device on this machine ({topology.Devices.Count} devices, {topology.Errors.Count} errors in /sys/bus/dax).");
        }
        // Read-only: a real device may hold someone's data.
        using DaxMapping first = dax.Map(new DaxMappingOptions { Length = (long)dax.Align, ReadOnly = true });
        Assert.Equal(MappingBacking.DeviceDax, first.Backing);
        Assert.Equal(0, first.AddressOf() % (long)dax.Align);
        _ = first.GetReadOnlySpan(0, 64)[0];
        Assert.True(first.ObservePageSize().DontFork);
        using DaxMapping last = dax.Map(new DaxMappingOptions { Offset = dax.Size - (long)dax.Align, ReadOnly = true });
        Assert.Equal((long)dax.Align, last.Length);
        Assert.Throws<ArgumentOutOfRangeException>(() => dax.Map(new DaxMappingOptions { Offset = dax.Size, Length = (long)dax.Align, ReadOnly = true }));
    }
}
