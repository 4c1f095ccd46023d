using DirectPmem.Driver;
using DirectPmem.Tests.Fixtures;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Driver;

/// <summary>
/// The tiers fixture tree (make-fixtures.sh): one device of each kind on nodes with and without
/// HMAT, in memory tiers, each property read exactly.
/// </summary>
public sealed class TierDiscoveryTests
{
    private const long BlockSize = 128L * 1024 * 1024;
    private static readonly DaxBus s_tiers = new(FixturePaths.Sysfs("tiers"));

    private static DaxDevice Device(string name) => s_tiers.Scan().Devices.Single(d => d.Name == name);

    [Fact]
    public void TiersTreeYieldsFourDevicesTwoRegionsNodesAndTiersWithoutErrors()
    {
        DaxTopology topology = s_tiers.Scan();
        Assert.Empty(topology.Errors);
        Assert.Equal(["dax0.0", "dax1.0", "dax2.0", "dax3.0"], topology.Devices.Select(d => d.Name));
        Assert.Equal(["region0", "region3"], topology.Regions.Select(r => r.Name));
        Assert.Equal([0, 2, 3, 4], topology.Nodes.Select(n => n.Id));
        Assert.Equal([4, 22], topology.Tiers.Select(t => t.Id));
        Assert.Equal([0], topology.Tiers[0].Nodes);
        Assert.Equal([2], topology.Tiers[1].Nodes);
        Assert.Equal(22528, topology.Tiers[1].AbstractDistanceStart);
        Assert.Equal(23552, topology.Tiers[1].AbstractDistanceEnd);
    }

    [Fact]
    public void NvdimmDeviceIsPersistentOnANodeWithoutHmatInTheDramTier()
    {
        DaxDevice dax = Device("dax0.0");
        AssertWhat(dax, DaxMemoryKind.Nvdimm, "dax0.0", "dax_pmem", DaxMemoryPersistence.Persistent, DaxDeviceMode.DeviceDax);
        Assert.Null(dax.Source?.CxlRegion);
        Assert.Equal(0, dax.TargetNode);
        Assert.Equal(0, dax.NumaNode);
        MemoryNode node = Assert.IsType<MemoryNode>(dax.TargetMemoryNode);
        Assert.Equal(0, node.Id);
        Assert.True(node.IsOnline);
        Assert.True(node.HasCpu);
        Assert.True(node.HasMemory);
        Assert.Null(node.Access0);
        Assert.Null(node.Access1);
        Assert.Equal(4, node.Tier?.Id);
        // Its range [0x100a00000, 0x11fffffff] holds the starts of blocks 33..35, none of which exists (device-DAX mode).
        Assert.Equal(BlockSize, dax.MemoryBlockSize);
        Assert.Empty(Assert.IsAssignableFrom<IReadOnlyList<MemoryBlock>>(dax.MemoryBlocks));
        Assert.Equal(DaxMemoryKind.Nvdimm, dax.Region?.Source.Kind);
        Assert.Equal("ndbus0", dax.Region?.Source.Provider);
        Assert.Equal("nd_bus", dax.Region?.Source.ProviderDriver);
    }

    [Fact]
    public void HmemDeviceInSystemRamModeHasItsBlocksAndAccess0Only()
    {
        DaxDevice dax = Device("dax1.0");
        AssertWhat(dax, DaxMemoryKind.SoftReserved, "hmem.1", "hmem", DaxMemoryPersistence.Volatile, DaxDeviceMode.SystemRam);
        Assert.Equal("system-ram", dax.Mode);
        Assert.Null(dax.Region);
        Assert.Equal(2, dax.TargetNode);
        MemoryNode node = Assert.IsType<MemoryNode>(dax.TargetMemoryNode);
        Assert.False(node.HasCpu);
        Assert.True(node.HasMemory);
        HmatPerformance access0 = Assert.IsType<HmatPerformance>(node.Access0);
        Assert.Equal(0, access0.AccessClass);
        Assert.Equal([0], access0.Initiators);
        Assert.Equal(250u, access0.ReadLatencyNanoseconds);
        Assert.Equal(300u, access0.WriteLatencyNanoseconds);
        Assert.Equal(8000u, access0.ReadBandwidthMBps);
        Assert.Equal(6000u, access0.WriteBandwidthMBps);
        Assert.Null(node.Access1);
        Assert.Equal(22, node.Tier?.Id);

        IReadOnlyList<MemoryBlock> blocks = Assert.IsAssignableFrom<IReadOnlyList<MemoryBlock>>(dax.MemoryBlocks);
        Assert.Equal([520L, 521L], blocks.Select(b => b.Id));
        Assert.Equal(0x1040000000UL, blocks[0].Start);
        Assert.Equal(0x1048000000UL, blocks[1].Start);
        Assert.All(blocks, b => Assert.Equal(BlockSize, b.Size));
        Assert.Equal(MemoryBlockState.Online, blocks[0].State);
        Assert.True(blocks[0].IsOnline);
        Assert.Equal(["Movable"], blocks[0].ValidZones);
        Assert.Equal(MemoryBlockState.Offline, blocks[1].State);
        Assert.Equal("offline", blocks[1].StateText);
        Assert.False(blocks[1].IsOnline);
        Assert.Equal(["Normal", "Movable"], blocks[1].ValidZones);
    }

    [Fact]
    public void CxlRamRegionIsVolatileWithItsRegionRootDecoderAndBothAccessClasses()
    {
        DaxDevice dax = Device("dax2.0");
        AssertWhat(dax, DaxMemoryKind.Cxl, "dax_region2", "cxl_dax_region", DaxMemoryPersistence.Volatile, DaxDeviceMode.DeviceDax);
        AssertCxlRegion(dax.Source?.CxlRegion, "region2", "decoder0.0", CxlRegionMode.Ram, "ram", 0x10000000L, 0x1080000000UL);
        Assert.Null(dax.Region);
        MemoryNode node = Assert.IsType<MemoryNode>(dax.TargetMemoryNode);
        Assert.Equal(3, node.Id);
        Assert.False(node.HasMemory);
        Assert.Null(node.Tier); // a node without online memory is in no tier
        Assert.Equal((170u, 180u, 24000u, 20000u), Figures(node.Access0));
        Assert.Equal((190u, 200u, 22000u, 18000u), Figures(node.Access1));
        Assert.Equal(1, node.Access1?.AccessClass);
        Assert.Empty(Assert.IsAssignableFrom<IReadOnlyList<MemoryBlock>>(dax.MemoryBlocks));
        Assert.Equal(0x1080000000UL, Assert.Single(dax.Ranges).Start);
    }

    [Fact]
    public void CxlPmemRegionThroughTheNvdimmBridgeIsPersistentAndNamesItsCxlRegion()
    {
        DaxDevice dax = Device("dax3.0");
        AssertWhat(dax, DaxMemoryKind.Cxl, "dax3.0", "dax_pmem", DaxMemoryPersistence.Persistent, DaxDeviceMode.DeviceDax);
        AssertCxlRegion(dax.Source?.CxlRegion, "region3", "decoder0.1", CxlRegionMode.Pmem, "pmem", 0x20000000L, 0x10c0000000UL);
        Assert.Equal(DaxPersistence.MemoryController, dax.Persistence);
        DaxRegion region = Assert.IsType<DaxRegion>(dax.Region);
        Assert.Equal("region3", region.Name);
        Assert.Equal(DaxMemoryKind.Cxl, region.Source.Kind);
        Assert.Equal("ndbus1", region.Source.Provider);
        Assert.Equal("region3", region.Source.CxlRegion?.Name);
        Assert.Equal(DaxMemoryPersistence.Persistent, region.Source.Persistence);
        Assert.Equal(4, region.TargetMemoryNode?.Id);
        Assert.Same(region.TargetMemoryNode, dax.TargetMemoryNode);
        Assert.Equal((350u, 500u, 12000u, 4000u), Figures(dax.TargetMemoryNode?.Access0));
        Assert.Equal((380u, 520u, 11000u, 3500u), Figures(dax.TargetMemoryNode?.Access1));
    }

    [Fact]
    public void TheGoodTreeWithoutNodeDirectoriesReportsOfflineNodesAndUnknownBlocks()
    {
        DaxTopology topology = new DaxBus(FixturePaths.Sysfs("good")).Scan();
        Assert.Empty(topology.Errors);
        Assert.Empty(topology.Tiers);
        DaxDevice hmem = topology.Devices.Single(d => d.Name == "dax1.0");
        Assert.Equal(DaxMemoryKind.SoftReserved, hmem.Source?.Kind);
        Assert.Equal("", hmem.Source?.ProviderDriver); // the good tree has no driver link on hmem.1: the name decides
        Assert.False(hmem.TargetMemoryNode?.IsOnline);
        Assert.Null(hmem.TargetMemoryNode?.HasCpu);
        Assert.Null(hmem.MemoryBlocks); // no block_size_bytes
        Assert.Null(hmem.MemoryBlockSize);
        Assert.Null(topology.Devices.Single(d => d.Name == "dax1.0").Region);
    }

    [Fact]
    public void ADeviceWhoseNdRegionBrokeARuleStillSaysItIsCxlPmem()
    {
        using TempDirectory copy = FixtureCopy.Of("tiers");
        File.WriteAllText(Path.Join(copy.Path, "bus/nd/devices/region3/size"), "abc\n");
        DaxTopology topology = new DaxBus(copy.Path).Scan();
        Assert.EndsWith("region3/size", Assert.Single(topology.Errors).FilePath, StringComparison.Ordinal);
        DaxDevice dax = topology.Devices.Single(d => d.Name == "dax3.0");
        Assert.Null(dax.Region);
        Assert.Equal(DaxPersistence.Unknown, dax.Persistence);
        AssertWhat(dax, DaxMemoryKind.Cxl, "dax3.0", "dax_pmem", DaxMemoryPersistence.Persistent, DaxDeviceMode.DeviceDax);
        Assert.Equal("region3", dax.Source?.CxlRegion?.Name);
    }

    [Fact]
    public void ACxlRegionModeThatIsNeitherRamNorPmemIsUnknownPersistence()
    {
        using TempDirectory copy = FixtureCopy.Of("tiers");
        File.WriteAllText(Path.Join(copy.Path, "bus/cxl/devices/region2/mode"), "mixed\n");
        DaxDevice dax = new DaxBus(copy.Path).GetDevice("dax2.0");
        Assert.Equal(CxlRegionMode.Unknown, dax.Source?.CxlRegion?.Mode);
        Assert.Equal("mixed", dax.Source?.CxlRegion?.ModeText);
        Assert.Equal(DaxMemoryPersistence.Unknown, dax.MemoryPersistence);
    }

    [Fact]
    public void ACxlRegionWithoutAModeAttributeTakesTheModeItsPathImpliesAsKernel61Shows()
    {
        // Linux 6.1 (the qemu guest's, run.sh --cxl) has no region 'mode': it makes pmem regions only.
        using TempDirectory copy = FixtureCopy.Of("tiers");
        File.Delete(Path.Join(copy.Path, "bus/cxl/devices/region2/mode"));
        File.Delete(Path.Join(copy.Path, "bus/cxl/devices/region3/mode"));
        var bus = new DaxBus(copy.Path);
        DaxDevice pmem = bus.GetDevice("dax3.0");
        Assert.Equal(CxlRegionMode.Pmem, pmem.Source?.CxlRegion?.Mode);
        Assert.Equal("", pmem.Source?.CxlRegion?.ModeText);
        Assert.Equal(DaxMemoryPersistence.Persistent, pmem.MemoryPersistence);
        Assert.Equal(DaxMemoryPersistence.Persistent, pmem.Region?.Source.Persistence);
        DaxDevice ram = bus.GetDevice("dax2.0");
        Assert.Equal(CxlRegionMode.Ram, ram.Source?.CxlRegion?.Mode);
        Assert.Equal(DaxMemoryPersistence.Volatile, ram.MemoryPersistence);
    }

    [Fact]
    public void AnHmatFigureOfZeroIsNotReported()
    {
        using TempDirectory copy = FixtureCopy.Of("tiers");
        File.WriteAllText(Path.Join(copy.Path, "devices/system/node/node3/access1/initiators/write_bandwidth"), "0\n");
        DaxDevice dax = new DaxBus(copy.Path).GetDevice("dax2.0");
        Assert.Null(dax.TargetMemoryNode?.Access1?.WriteBandwidthMBps);
        Assert.Equal(22000u, dax.TargetMemoryNode?.Access1?.ReadBandwidthMBps);
    }

    [Fact]
    public void ANodeInTwoTiersIsATypedError()
    {
        using TempDirectory copy = FixtureCopy.Of("tiers");
        File.WriteAllText(Path.Join(copy.Path, "devices/virtual/memory_tiering/memory_tier22/nodelist"), "0,2\n");
        var bus = new DaxBus(copy.Path);
        DaxTopology topology = bus.Scan();
        // One error for the scan; every device is still there, and no node has a tier.
        DaxConfigurationException error = Assert.Single(topology.Errors);
        Assert.Equal(DaxConfigurationRule.OutOfRange, error.Rule);
        Assert.Contains("node 0 is also in memory_tier", error.Message, StringComparison.Ordinal);
        Assert.EndsWith("nodelist", error.FilePath, StringComparison.Ordinal);
        Assert.Equal(4, topology.Devices.Count);
        Assert.Empty(topology.Tiers);
        Assert.All(topology.Nodes, n => Assert.Null(n.Tier));
        Assert.Equal(error.Message, Assert.Throws<DaxConfigurationException>(bus.GetDevices).Message);
        // Opening one device does not depend on the tier list: it comes without a tier.
        Assert.Null(bus.GetDevice("dax1.0").TargetMemoryNode?.Tier);
    }

    [Theory]
    [InlineData("8000001")]
    [InlineData("zz")]
    [InlineData("0")]
    public void ABrokenBlockSizeIsOneErrorAndUnknownBlocks(string text)
    {
        using TempDirectory copy = FixtureCopy.Of("tiers");
        File.WriteAllText(Path.Join(copy.Path, "devices/system/memory/block_size_bytes"), text + "\n");
        var bus = new DaxBus(copy.Path);
        DaxTopology topology = bus.Scan();
        DaxConfigurationException error = Assert.Single(topology.Errors);
        Assert.EndsWith("block_size_bytes", error.FilePath, StringComparison.Ordinal);
        Assert.Equal(4, topology.Devices.Count);
        Assert.All(topology.Devices, d => Assert.Null(d.MemoryBlocks));
        Assert.Equal(error.Message, Assert.Throws<DaxConfigurationException>(bus.GetDevices).Message);
        Assert.Equal(error.Message, Assert.Throws<DaxConfigurationException>(bus.GetRegions).Message);
    }

    [Fact]
    public void ABlockWhosePhysIndexIsNotItsDirectoryIsATypedError()
    {
        using TempDirectory copy = FixtureCopy.Of("tiers");
        File.WriteAllText(Path.Join(copy.Path, "devices/system/memory/memory521/phys_index"), "00000208\n");
        DaxTopology topology = new DaxBus(copy.Path).Scan();
        Assert.DoesNotContain(topology.Devices, d => d.Name == "dax1.0");
        DaxConfigurationException error = Assert.Single(topology.Errors);
        Assert.Equal(DaxConfigurationRule.InvalidRange, error.Rule);
        Assert.EndsWith("memory521/phys_index", error.FilePath, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("0", new int[0])]
    [InlineData("", new int[0])]
    [InlineData("3", new[] { 3 })]
    [InlineData("0-2,5", new[] { 0, 1, 2, 5 })]
    [InlineData("1,1-1", new[] { 1 })]
    public void NodeListsParseAsTheKernelPrintsThem(string text, int[] expected)
    {
        if (text == "0")
        {
            expected = [0];
        }
        Assert.Equal(expected, MemoryTopologyReader.ParseNodeList("nodelist", text).Order());
    }

    [Theory]
    [InlineData("2-1")]
    [InlineData("-1")]
    [InlineData("0,")]
    [InlineData("a")]
    [InlineData("0-65536")]
    [InlineData("1 2")]
    [InlineData("+1")]
    public void MalformedNodeListsAreTypedErrors(string text)
    {
        DaxConfigurationException e = Assert.Throws<DaxConfigurationException>(() => MemoryTopologyReader.ParseNodeList("nodelist", text));
        Assert.Equal("nodelist", e.FilePath);
    }

    private static void AssertWhat(DaxDevice dax, DaxMemoryKind kind, string provider, string driver, DaxMemoryPersistence persistence, DaxDeviceMode mode)
    {
        Assert.NotNull(dax.Source);
        Assert.Equal((kind, provider, driver, persistence, mode),
            (dax.Source.Kind, dax.Source.Provider, dax.Source.ProviderDriver, dax.MemoryPersistence, dax.DeviceMode));
    }

    private static void AssertCxlRegion(CxlRegion? cxl, string name, string rootDecoder, CxlRegionMode mode, string modeText, long size, ulong resource)
    {
        Assert.NotNull(cxl);
        Assert.Equal((name, rootDecoder, mode, modeText, (long?)size, (ulong?)resource), (cxl.Name, cxl.RootDecoder, cxl.Mode, cxl.ModeText, cxl.Size, cxl.Resource));
    }

    private static (uint?, uint?, uint?, uint?) Figures(HmatPerformance? p)
        => (p?.ReadLatencyNanoseconds, p?.WriteLatencyNanoseconds, p?.ReadBandwidthMBps, p?.WriteBandwidthMBps);
}

/// <summary>
/// Every number the tier discovery reads (HMAT figures, tier node lists, memory block size and
/// indexes, block online flags, CXL region sizes), set in turn to boundary and garbage values:
/// a scan never throws, and what it cannot trust is a typed error naming the file, or absent.
/// </summary>
public sealed class TierNumberSweepTests
{
    private static readonly string[] s_values =
    [
        "0", "1", "-1", "4095", "4096", "8000000", "0x8000000", "208", "00000208", "4294967295", "4294967296",
        "9223372036854775807", "9223372036854775808", "18446744073709551615", "18446744073709551616",
        "", "0x", "abc", "1 2", "+5", "1e9", "0-2,5", "2-1", "٣",
    ];

    private static readonly string[] s_files =
    [
        "devices/system/node/node2/access0/initiators/read_latency",
        "devices/system/node/node3/access1/initiators/write_bandwidth",
        "devices/system/node/node4/access0/initiators/read_bandwidth",
        "devices/system/node/has_cpu",
        "devices/system/node/has_memory",
        "devices/virtual/memory_tiering/memory_tier22/nodelist",
        "devices/system/memory/block_size_bytes",
        "devices/system/memory/memory520/phys_index",
        "devices/system/memory/memory521/online",
        "devices/platform/ACPI0017:00/root0/decoder0.0/region2/size",
        "devices/platform/ACPI0017:00/root0/decoder0.1/region3/size",
    ];

    [Fact]
    public void EveryValueInEveryTierAttributeIsAValidResultOrATypedError()
    {
        using TempDirectory copy = FixtureCopy.Of("tiers");
        var bus = new DaxBus(copy.Path);
        Assert.Empty(bus.Scan().Errors);
        int cases = 0, refused = 0;
        foreach (string file in s_files)
        {
            string path = Path.Join(copy.Path, file);
            string good = File.ReadAllText(path);
            foreach (string value in s_values)
            {
                File.WriteAllText(path, value + "\n");
                cases++;
                DaxTopology topology = bus.Scan();
                refused += topology.Errors.Count > 0 ? 1 : 0;
                foreach (DaxConfigurationException error in topology.Errors)
                {
                    Assert.StartsWith(copy.Path, error.FilePath, StringComparison.Ordinal);
                }
                Exception? thrown = Record.Exception(bus.GetDevices);
                Assert.True(thrown is null or DaxConfigurationException, $"{file} = '{value}': {thrown}");
            }
            File.WriteAllText(path, good);
        }
        Assert.Empty(bus.Scan().Errors);
        Assert.True(refused > cases / 2, $"only {refused} of {cases} cases were refused");
    }
}
