using System.Globalization;

namespace DirectPmem.Driver;

/// <summary>
/// The performance the firmware (ACPI HMAT) reports for a memory node from one access class
/// (<c>/sys/devices/system/node/nodeN/accessC/initiators/</c>). A figure the node does not report
/// is null. Built only by discovery.
/// </summary>
public sealed class HmatPerformance
{
    internal HmatPerformance(int accessClass, IReadOnlyList<int> initiators, uint? readLatency, uint? writeLatency, uint? readBandwidth, uint? writeBandwidth)
    {
        AccessClass = accessClass;
        Initiators = initiators;
        ReadLatencyNanoseconds = readLatency;
        WriteLatencyNanoseconds = writeLatency;
        ReadBandwidthMBps = readBandwidth;
        WriteBandwidthMBps = writeBandwidth;
    }

    /// <summary>
    /// The access class: 0 (<c>access0</c>, the best initiators of any kind) or 1 (<c>access1</c>,
    /// the best CPU initiators).
    /// </summary>
    public int AccessClass { get; }

    /// <summary>The initiator nodes the figures are measured from (the <c>nodeM</c> links in <c>initiators/</c>).</summary>
    public IReadOnlyList<int> Initiators { get; }

    /// <summary>Read latency in nanoseconds (<c>read_latency</c>), or null when not reported.</summary>
    public uint? ReadLatencyNanoseconds { get; }

    /// <summary>Write latency in nanoseconds (<c>write_latency</c>), or null when not reported.</summary>
    public uint? WriteLatencyNanoseconds { get; }

    /// <summary>Read bandwidth in MB/s (<c>read_bandwidth</c>), or null when not reported.</summary>
    public uint? ReadBandwidthMBps { get; }

    /// <summary>Write bandwidth in MB/s (<c>write_bandwidth</c>), or null when not reported.</summary>
    public uint? WriteBandwidthMBps { get; }

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"access{AccessClass}: read {ReadLatencyNanoseconds?.ToString(CultureInfo.InvariantCulture) ?? "-"} ns {ReadBandwidthMBps?.ToString(CultureInfo.InvariantCulture) ?? "-"} MB/s, write {WriteLatencyNanoseconds?.ToString(CultureInfo.InvariantCulture) ?? "-"} ns {WriteBandwidthMBps?.ToString(CultureInfo.InvariantCulture) ?? "-"} MB/s");
}

/// <summary>
/// A memory tier (<c>/sys/devices/virtual/memory_tiering/memory_tierN</c>): the kernel groups
/// nodes of similar performance by abstract distance. Built only by discovery.
/// </summary>
public sealed class MemoryTier
{
    /// <summary>The span of abstract distance one tier covers (the kernel's <c>MEMTIER_CHUNK_SIZE</c>, 1 &lt;&lt; 10).</summary>
    public const int AbstractDistanceChunk = 1024;

    internal MemoryTier(int id, IReadOnlyList<int> nodes)
    {
        Id = id;
        Nodes = nodes;
    }

    /// <summary>N in <c>memory_tierN</c>: the tier's abstract distance divided by <see cref="AbstractDistanceChunk"/>. Lower is faster.</summary>
    public int Id { get; }

    /// <summary>The nodes in the tier (<c>nodelist</c>).</summary>
    public IReadOnlyList<int> Nodes { get; }

    /// <summary>
    /// The lowest abstract distance the tier holds. The kernel names a tier after its distance
    /// (<c>memory_tier</c> + distance &gt;&gt; 10) and exposes no other figure; DRAM is 4608 (tier 4),
    /// kmem's default for dax memory five times that (tier 22).
    /// </summary>
    public long AbstractDistanceStart => (long)Id * AbstractDistanceChunk;

    /// <summary>One past the highest abstract distance the tier holds.</summary>
    public long AbstractDistanceEnd => AbstractDistanceStart + AbstractDistanceChunk;

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"memory_tier{Id}: nodes {string.Join(',', Nodes)}");
}

/// <summary>
/// A NUMA node as the memory of a dax device sees it (<c>/sys/devices/system/node/nodeN</c>):
/// whether it is online, has CPUs or memory, what HMAT reports for it and which memory tier it is
/// in. Built only by discovery.
/// </summary>
public sealed class MemoryNode
{
    internal MemoryNode(int id, bool online, bool? hasCpu, bool? hasMemory, HmatPerformance? access0, HmatPerformance? access1, MemoryTier? tier)
    {
        Id = id;
        IsOnline = online;
        HasCpu = hasCpu;
        HasMemory = hasMemory;
        Access0 = access0;
        Access1 = access1;
        Tier = tier;
    }

    /// <summary>The node's number.</summary>
    public int Id { get; }

    /// <summary>Whether the kernel has the node (<c>nodeN</c> exists).</summary>
    public bool IsOnline { get; }

    /// <summary>Whether the node has CPUs (<c>node/has_cpu</c>), or null when the list is not exposed.</summary>
    public bool? HasCpu { get; }

    /// <summary>Whether the node has online memory (<c>node/has_memory</c>), or null when the list is not exposed.</summary>
    public bool? HasMemory { get; }

    /// <summary>HMAT figures from the best initiators of any kind (<c>access0</c>), or null when the node reports none.</summary>
    public HmatPerformance? Access0 { get; }

    /// <summary>HMAT figures from the best CPU initiators (<c>access1</c>), or null when the node reports none.</summary>
    public HmatPerformance? Access1 { get; }

    /// <summary>
    /// The memory tier the node is in, or null when it is in none (a node without online memory is
    /// in no tier) or the tier list is broken (reported once in <see cref="DaxTopology.Errors"/>).
    /// </summary>
    public MemoryTier? Tier { get; }

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"node{Id}{(IsOnline ? "" : " (offline)")}{(Tier is null ? "" : $", tier {Tier.Id}")}");
}
