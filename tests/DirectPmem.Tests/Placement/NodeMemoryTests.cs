using System.Globalization;
using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Placement;
using DirectPmem.Tests.Fixtures;
using Xunit;

namespace DirectPmem.Tests.Placement;

/// <summary>
/// <see cref="NodeMemory"/> on this machine's own nodes (whatever it has: asked from sysfs) and on
/// the tiers fixture tree: bound memory lands on its node by move_pages, and a node that does not
/// exist or has no memory is a typed error that lists the nodes.
/// </summary>
public sealed class NodeMemoryTests
{
    private const long EightMiB = 8L << 20;
    private static readonly string s_tiers = FixturePaths.Sysfs("tiers");

    /// <summary>The first node this machine says has memory, or skips.</summary>
    private static int NodeWithMemory()
    {
        string path = "/sys/devices/system/node/has_memory";
        if (!File.Exists(path))
        {
            Assert.Skip($"{path} does not exist: the kernel has no NUMA nodes to place on.");
        }
        string text = File.ReadAllText(path).Trim();
        return int.Parse(text.Split(',', '-')[0], NumberStyles.None, CultureInfo.InvariantCulture);
    }

    [Fact]
    public void BoundMemoryLandsEveryPageOnItsNode()
    {
        int node = NodeWithMemory();
        using DaxMapping mapping = NodeMemory.Map([node], EightMiB);
        PagePlacement placement = NodeMemory.QueryPlacement(mapping);
        Assert.True(placement.IsEntirelyOn(node), placement.ToString());
        Assert.Equal(EightMiB / Environment.SystemPageSize, placement.PageCount);
        Assert.Equal(0, placement.PagesNotPresent);
        Assert.Empty(placement.PagesWithError);
        Assert.Contains($"node{node} {placement.PageCount}", placement.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void PreferredManyPopulatesAndReportsWhereThePagesWent()
    {
        int node = NodeWithMemory();
        using DaxMapping mapping = NodeMemory.Map([node], EightMiB, NodePolicy.PreferredMany);
        PagePlacement placement = NodeMemory.QueryPlacement(mapping);
        Assert.Equal(0, placement.PagesNotPresent);
        Assert.Equal(placement.PageCount, placement.PagesPerNode.Values.Sum());
    }

    [Fact]
    public void AnUntouchedMappingHasNoPagePresent()
    {
        NodeWithMemory();
        using DaxMapping mapping = DaxMapping.CreateAnonymous(EightMiB);
        PagePlacement placement = NodeMemory.QueryPlacement(mapping);
        Assert.Equal(placement.PageCount, placement.PagesNotPresent);
        Assert.Empty(placement.PagesPerNode);
        Assert.False(placement.IsEntirelyOn(0));
    }

    [Fact]
    public void AnEmulatedMemfdDeviceMappingIsBoundAndMovedToTheNode()
    {
        int node = NodeWithMemory();
        using DaxDevice device = DaxDevice.CreateEmulatedMemory("node-bind", EightMiB, PageSize.Pte);
        using DaxMapping mapping = device.MapRaw();
        mapping.GetSpan(0, 4096).Fill(7); // one page exists before the bind: MPOL_MF_MOVE takes it along
        PagePlacement placement = NodeMemory.Bind(mapping, [node]);
        Assert.True(placement.IsEntirelyOn(node), placement.ToString());
        Assert.Equal(7, mapping.GetReadOnlySpan(4095, 1)[0]);
    }

    [Fact]
    public void ANodeThatDoesNotExistIsATypedErrorListingTheNodesAndMapsNothing()
    {
        long live = DaxMapping.LiveCount;
        MemoryPlacementException e = Assert.Throws<MemoryPlacementException>(() => NodeMemory.Map(s_tiers, [1], EightMiB, NodePolicy.Bind, null));
        Assert.Equal(MemoryPlacementFailure.NoSuchNode, e.Failure);
        Assert.StartsWith("NUMA node 1 does not exist; the nodes are: node0, cpus, memory, memory_tier4;", e.Message, StringComparison.Ordinal);
        Assert.Equal(["node0", "node2", "node3", "node4"], e.Available.Select(a => a.Split(',')[0]));
        Assert.Contains("node2, no cpus, memory, memory_tier22, access0: read 250 ns", e.Available[1], StringComparison.Ordinal);
        Assert.Equal(live, DaxMapping.LiveCount);
    }

    [Fact]
    public void ANodeWithoutMemoryIsATypedError()
    {
        MemoryPlacementException e = Assert.Throws<MemoryPlacementException>(() => NodeMemory.Map(s_tiers, [3], EightMiB, NodePolicy.Bind, null));
        Assert.Equal(MemoryPlacementFailure.NodeHasNoMemory, e.Failure);
        Assert.Contains("NUMA node 3 has no online memory", e.Message, StringComparison.Ordinal);
        Assert.Contains(e.Available, a => a.StartsWith("node3, no cpus, no memory", StringComparison.Ordinal));
    }

    [Fact]
    public void ANodeOnThisMachineThatDoesNotExistIsRefusedBeforeAnythingIsMapped()
    {
        NodeWithMemory();
        long live = DaxMapping.LiveCount;
        MemoryPlacementException e = Assert.Throws<MemoryPlacementException>(() => NodeMemory.Map([4000], EightMiB));
        Assert.Equal(MemoryPlacementFailure.NoSuchNode, e.Failure);
        Assert.NotEmpty(e.Available);
        Assert.Equal(live, DaxMapping.LiveCount);
    }

    [Fact]
    public void BadArgumentsNameTheirParameter()
    {
        Assert.Equal("nodes", Assert.Throws<ArgumentException>(() => NodeMemory.Map([], EightMiB)).ParamName);
        Assert.Equal("nodes", Assert.Throws<ArgumentOutOfRangeException>(() => NodeMemory.Map([-1], EightMiB)).ParamName);
    }
}
