using System.Globalization;
using DirectPmem.Driver;
using DirectPmem.Mapping;
using DirectPmem.Placement;

namespace DirectPmem.IntegrationTests;

/// <summary>
/// Issue 20 in the qemu guest booted by <c>tests/devdax-vm/run.sh --tiers</c>: two NUMA nodes with
/// HMAT (CPUs on node 0, memory-only node 1), the NVDIMM on node 1. Discovery must report node 1,
/// its HMAT figures, its tier and the device as persistent; placement on node 1 must land every page
/// there (checked with move_pages).
/// </summary>
[Collection(DeviceTestGroup.Name)]
public sealed class TierTests(ITestOutputHelper output)
{
    private const long SixtyFourMiB = 64L << 20;

    /// <summary>The memory-only node the guest put the NVDIMM on (DIRECTPMEM_TIERS_NODE), or skips.</summary>
    private static int RequireTierNode()
    {
        string? text = Environment.GetEnvironmentVariable("DIRECTPMEM_TIERS_NODE");
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int node))
        {
            Assert.Skip("no HMAT guest: DIRECTPMEM_TIERS_NODE is not set (run tests/devdax-vm/run.sh --tiers).");
        }
        return node;
    }

    [Fact]
    public void Discovery_reports_the_device_on_the_memory_only_node_with_its_HMAT_figures_tier_and_persistence()
    {
        int node = RequireTierNode();
        string path = IntegrationEnvironment.RequireDevice();
        DaxTopology topology = DaxBus.Default.Scan();
        Assert.Empty(topology.Errors);
        DaxDevice device = Assert.Single(topology.Devices, d => d.DevicePath == path);
        output.WriteLine($"{device.Name}: target node {device.TargetNode}, numa node {device.NumaNode}, {device.Source}, {device.MemoryPersistence}, mode {device.DeviceMode}");
        MemoryNode target = Assert.IsType<MemoryNode>(device.TargetMemoryNode);
        output.WriteLine($"node{target.Id}: cpu {target.HasCpu}, memory {target.HasMemory}, tier {target.Tier}, {target.Access0}, {target.Access1}");
        foreach (MemoryTier tier in topology.Tiers)
        {
            output.WriteLine(tier.ToString());
        }

        Assert.Equal(node, device.TargetNode);
        Assert.Equal(DaxMemoryKind.Nvdimm, device.Source?.Kind);
        Assert.Equal(DaxMemoryPersistence.Persistent, device.MemoryPersistence);
        Assert.Equal(DaxDeviceMode.DeviceDax, device.DeviceMode);
        Assert.False(target.HasCpu);
        Assert.True(target.HasMemory);
        // The kernel's own figures for the node, as the guest's HMAT gives them (run.sh: node 1 is 320 ns, 4 GB/s from node 0).
        HmatPerformance hmat = Assert.IsType<HmatPerformance>(target.Access0);
        Assert.Equal([0], hmat.Initiators);
        Assert.Equal(ReadFigure(node, "read_latency"), hmat.ReadLatencyNanoseconds);
        Assert.Equal(ReadFigure(node, "read_bandwidth"), hmat.ReadBandwidthMBps);
        Assert.NotNull(hmat.ReadLatencyNanoseconds);
        Assert.NotNull(hmat.ReadBandwidthMBps);
        // The node with CPUs is faster by the same table.
        MemoryNode cpuNode = Assert.Single(NodesOf(topology), n => n.HasCpu == true);
        Assert.True(cpuNode.Access0?.ReadLatencyNanoseconds < hmat.ReadLatencyNanoseconds, $"node{cpuNode.Id} {cpuNode.Access0} vs node{node} {hmat}");
        MemoryTier tierOfNode = Assert.IsType<MemoryTier>(target.Tier);
        Assert.Contains(node, tierOfNode.Nodes);
        Assert.Contains(tierOfNode, topology.Tiers);
    }

    [Fact]
    public void Memory_placed_on_the_memory_only_node_lands_every_page_there_by_move_pages()
    {
        int node = RequireTierNode();
        using DaxMapping mapping = NodeMemory.Map([node], SixtyFourMiB);
        mapping.GetSpan(0, 4096).Fill(0xA5);
        PagePlacement placement = NodeMemory.QueryPlacement(mapping);
        output.WriteLine(placement.ToString());
        Assert.True(placement.IsEntirelyOn(node), placement.ToString());
        Assert.Equal(SixtyFourMiB / Environment.SystemPageSize, placement.PageCount);
        Assert.Equal(0, placement.PagesNotPresent);

        // And the other node gets its own: placement is not an accident of where free memory was.
        using DaxMapping other = NodeMemory.Map([0], SixtyFourMiB);
        PagePlacement onZero = NodeMemory.QueryPlacement(other);
        output.WriteLine(onZero.ToString());
        Assert.True(onZero.IsEntirelyOn(0), onZero.ToString());
    }

    [Fact]
    public void Preferred_many_on_the_memory_only_node_puts_pages_there_and_reports_where_they_went()
    {
        int node = RequireTierNode();
        using DaxMapping mapping = NodeMemory.Map([node], SixtyFourMiB, NodePolicy.PreferredMany);
        PagePlacement placement = NodeMemory.QueryPlacement(mapping);
        output.WriteLine(placement.ToString());
        Assert.True(placement.IsEntirelyOn(node), placement.ToString());
    }

    [Fact]
    public void Placement_on_a_node_that_does_not_exist_is_a_typed_error_listing_both_nodes_and_maps_nothing()
    {
        int node = RequireTierNode();
        long live = DaxMapping.LiveCount;
        MemoryPlacementException e = Assert.Throws<MemoryPlacementException>(() => NodeMemory.Map([node + 6], SixtyFourMiB));
        output.WriteLine(e.Message);
        Assert.Equal(MemoryPlacementFailure.NoSuchNode, e.Failure);
        Assert.Equal(2, e.Available.Count);
        Assert.Contains(e.Available, line => line.StartsWith($"node{node}, no cpus, memory", StringComparison.Ordinal));
        Assert.Equal(live, DaxMapping.LiveCount);
    }

    [Fact]
    public void The_lowest_latency_persistent_device_is_chosen_and_mapped_through_its_range_allocator()
    {
        int node = RequireTierNode();
        string path = IntegrationEnvironment.RequireDevice();
        using (DaxDevice device = DaxDevice.Open(path))
        {
            // The device this tier may overwrite gets a fresh range table unless it holds a valid one (before it is
            // weighed: placement counts the free space of its table). run.sh
            // --tiers makes a fresh NVDIMM, but the system-ram round trip (another test of this class, in any
            // order) lends the device to the kernel as ordinary memory, which leaves its label area holding
            // whatever the kernel wrote: neither a table nor all zeros. The label area is cleared, then formatted.
            try
            {
                DaxRangeAllocator.Open(device).Dispose();
            }
            catch (DaxLabelException unusable)
            {
                output.WriteLine($"no usable label table ({unusable.Rule}): clearing the label area and formatting");
                using (DaxMapping raw = device.MapRaw())
                {
                    raw.Write(new byte[DaxRangeAllocator.LabelAreaLengthFor(device.Align)], 0);
                }
                DaxRangeAllocator.Format(device).Dispose();
            }
        }
        // Weighed by what its range allocator can still give (the table was made above, or holds an earlier run's ranges).
        TierCandidate chosen = TierPlacement.Select(DaxBus.Default.Scan(), new TierRequest { Persistence = DaxMemoryPersistence.Persistent, MinimumBytes = SixtyFourMiB, Initiator = 0 });
        output.WriteLine($"chosen: {chosen}");
        Assert.Equal(path, chosen.Device.DevicePath);
        Assert.Equal(node, chosen.Node?.Id);
        Assert.Equal(chosen.Node?.Access1?.ReadLatencyNanoseconds ?? chosen.Node?.Access0?.ReadLatencyNanoseconds, chosen.Performance?.ReadLatencyNanoseconds);
        using DaxMapping mapping = TierPlacement.Map(chosen, SixtyFourMiB, "tier-index");
        Assert.Equal(MappingBacking.DeviceDax, mapping.Backing);
        Assert.Equal(SixtyFourMiB, mapping.Length);
        mapping.GetSpan(0, 8).Fill(1);

        // Volatile memory is not there: the error lists the device and why it was passed over.
        MemoryPlacementException e = Assert.Throws<MemoryPlacementException>(() => TierPlacement.Select(DaxBus.Default.Scan(), new TierRequest { Persistence = DaxMemoryPersistence.Volatile }));
        output.WriteLine(e.Message);
        Assert.Equal(MemoryPlacementFailure.NoMatchingMemory, e.Failure);
        Assert.Contains(e.Available, a => a.StartsWith("dax0.0 (Nvdimm, Persistent, devdax, node1", StringComparison.Ordinal) && a.EndsWith("Persistent memory, Volatile asked for", StringComparison.Ordinal));
    }

    [Fact]
    public void A_device_reconfigured_to_system_ram_is_node_memory_then_round_trips_back_to_devdax()
    {
        int node = RequireTierNode();
        string path = IntegrationEnvironment.RequireDevice();
        DaxDevice before = DaxBus.Default.GetDevice(Path.GetFileName(path));
        Assert.Equal(DaxDeviceMode.DeviceDax, before.DeviceMode);
        long totalBefore = NodeMemTotalKiB(node);

        DaxDevice ram = DaxReconfiguration.ToSystemRam(before);
        try
        {
            IReadOnlyList<MemoryBlock> blocks = Assert.IsAssignableFrom<IReadOnlyList<MemoryBlock>>(ram.MemoryBlocks);
            output.WriteLine($"{ram.Name}: {ram.Mode}, {blocks.Count} blocks: {string.Join("; ", blocks)}; auto_online_blocks {File.ReadAllText("/sys/devices/system/memory/auto_online_blocks").Trim()}");
            long totalRam = NodeMemTotalKiB(node);
            output.WriteLine($"node{node} MemTotal {totalBefore} kB -> {totalRam} kB");
            Assert.Equal(DaxDeviceMode.SystemRam, ram.DeviceMode);
            Assert.NotEmpty(blocks);
            Assert.All(blocks, b => Assert.True(b.IsOnline && b.ValidZones.Contains("Movable"), b.ToString()));
            // The blocks are node memory now: the node grew by exactly them, and they are node<N>'s in sysfs.
            Assert.Equal(blocks.Sum(b => b.Size) / 1024, totalRam - totalBefore);
            Assert.All(blocks, b => Assert.True(Directory.Exists($"/sys/devices/system/node/node{node}/memory{b.Id}"), $"memory{b.Id} is not under node{node}"));
            // The node stays (it belongs to the dax device, which stays on the bus), but its cdev went with device_dax.
            Assert.ThrowsAny<IOException>(() => File.OpenHandle(path, FileMode.Open, FileAccess.Read).Dispose());

            // Misuse: the old devdax snapshot and the system-ram device itself cannot be mapped as devdax; typed errors.
            DaxConfigurationException stale = Assert.Throws<DaxConfigurationException>(() => before.MapRaw());
            output.WriteLine(stale.Message);
            Assert.Equal(DaxConfigurationRule.NotInDeviceDaxMode, stale.Rule);
            Assert.Equal(DaxConfigurationRule.NotInDeviceDaxMode, Assert.Throws<DaxConfigurationException>(() => ram.Map()).Rule);

            // Asked for by what it is, the device is now reached through its node: bound memory, checked page by page.
            TierCandidate chosen = TierPlacement.Select(DaxBus.Default.Scan(), new TierRequest { Persistence = DaxMemoryPersistence.Persistent, MinimumBytes = SixtyFourMiB, Initiator = 0 });
            output.WriteLine($"chosen: {chosen}");
            Assert.True(chosen.IsSystemRam);
            using DaxMapping placed = TierPlacement.Map(chosen, SixtyFourMiB, "unused");
            Assert.Equal(MappingBacking.Anonymous, placed.Backing);
            Assert.True(NodeMemory.QueryPlacement(placed).IsEntirelyOn(node));
        }
        finally
        {
            DaxDevice back = DaxReconfiguration.ToDeviceDax(DaxBus.Default.GetDevice(before.Name));
            output.WriteLine($"{back.Name}: {back.Mode}; node{node} MemTotal {NodeMemTotalKiB(node)} kB");
            Assert.Equal(DaxDeviceMode.DeviceDax, back.DeviceMode);
        }
        Assert.Equal(totalBefore, NodeMemTotalKiB(node));
        using DaxDevice reopened = DaxDevice.Open(path);
        using DaxMapping mapping = reopened.MapRaw(new DaxMappingOptions { Length = 2L << 20 });
        mapping.GetSpan(0, 64).Fill(0x5A);
        Assert.Equal(0x5A, mapping.GetReadOnlySpan(63, 1)[0]);
    }

    [Fact]
    public void Reconfiguring_a_device_under_a_live_mapping_is_refused_and_the_mapping_keeps_its_data()
    {
        RequireTierNode();
        string path = IntegrationEnvironment.RequireDevice();
        using DaxDevice device = DaxDevice.Open(path);
        using DaxMapping mapping = device.MapRaw(new DaxMappingOptions { Length = 2L << 20 });
        mapping.GetSpan(4096, 16).Fill(0xC3);
        DaxReconfigurationException e = Assert.Throws<DaxReconfigurationException>(() => DaxReconfiguration.ToSystemRam(DaxBus.Default.GetDevice(device.Name)));
        output.WriteLine(e.Message);
        Assert.Equal(DaxReconfigurationProblem.DeviceInUse, e.Problem);
        Assert.Contains(Environment.ProcessId.ToString(CultureInfo.InvariantCulture), e.Message, StringComparison.Ordinal);
        Assert.Equal(DaxDeviceMode.DeviceDax, DaxBus.Default.GetDevice(device.Name).DeviceMode);
        Assert.True(mapping.GetReadOnlySpan(4096, 16).IndexOfAnyExcept((byte)0xC3) < 0);
    }

    private static long NodeMemTotalKiB(int node)
    {
        foreach (string line in File.ReadLines($"/sys/devices/system/node/node{node}/meminfo"))
        {
            // "Node 1 MemTotal:         524288 kB"
            if (line.Contains("MemTotal:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[3], CultureInfo.InvariantCulture);
            }
        }
        throw new InvalidOperationException($"node{node}/meminfo has no MemTotal");
    }

    private static IEnumerable<MemoryNode> NodesOf(DaxTopology topology)
    {
        _ = topology;
        return new MemoryTopologyReader(DaxBus.Default.SysfsRoot).AllNodes();
    }

    private static uint? ReadFigure(int node, string name)
        => MemoryTopologyReader.ReadFigure($"/sys/devices/system/node/node{node}/access0/initiators/{name}");
}
