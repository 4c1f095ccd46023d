using System.Globalization;
using System.Text.Json.Serialization;
using DirectPmem.Driver;

namespace DirectPmem.Tool.Cli;

/// <summary><c>dpmem list --tiers --json</c>: the memory tiers and every device with what it is and where it sits.</summary>
internal sealed record TierReport(IReadOnlyList<TierListing> Tiers, IReadOnlyList<TierDeviceListing> Devices, IReadOnlyList<TierRegionListing> Regions);

/// <summary>One NVDIMM region (an NVDIMM's or a CXL pmem region's): its kind, node and tier.</summary>
internal sealed record TierRegionListing(
    string Dev,
    string Kind,
    string Persistence,
    long Size,
    int? TargetNode,
    int? NumaNode,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] int? Tier,
    string? Provider,
    CxlRegionListing? CxlRegion);

/// <summary>One memory tier (<c>memory_tierN</c>).</summary>
internal sealed record TierListing(int Id, IReadOnlyList<int> Nodes, long AbstractDistanceStart, long AbstractDistanceEnd);

/// <summary>One dax device: its kind, persistence, node, HMAT figures, tier, mode and memory blocks.</summary>
internal sealed record TierDeviceListing(
    string Chardev,
    string Kind,
    string Persistence,
    string Mode,
    long Size,
    long Align,
    int? TargetNode,
    int? NumaNode,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] int? Tier,
    string? Provider,
    string? ProviderDriver,
    string? Region,
    CxlRegionListing? CxlRegion,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] HmatListing? Access0,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] HmatListing? Access1,
    long? MemoryBlockSize,
    IReadOnlyList<MemoryBlockListing>? MemoryBlocks,
    IReadOnlyList<MappingListing> Mappings);

/// <summary>The CXL region behind a device.</summary>
internal sealed record CxlRegionListing(string Name, string RootDecoder, string Mode, long? Size);

/// <summary>HMAT figures from one access class; a figure the node does not report is null.</summary>
internal sealed record HmatListing(
    IReadOnlyList<int> Initiators,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] uint? ReadLatencyNs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] uint? WriteLatencyNs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] uint? ReadBandwidthMbps,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] uint? WriteBandwidthMbps);

/// <summary>One memory block of a device (daxctl's <c>memblock</c>).</summary>
internal sealed record MemoryBlockListing(long Id, string Start, string State, bool Online, IReadOnlyList<string> ValidZones);

/// <summary>One physical range (<c>mappingN</c>).</summary>
internal sealed record MappingListing(int Index, string Start, string End, long PageOffset);

/// <summary>Builds the tier view of a scan: devices ordered by tier (fastest first, none last), then node, then name.</summary>
internal static class TierView
{
    internal static IEnumerable<DaxDevice> Ordered(DaxTopology topology)
        => topology.Devices
            .OrderBy(d => d.TargetMemoryNode?.Tier?.Id ?? int.MaxValue)
            .ThenBy(d => d.TargetNode is int n && n >= 0 ? n : int.MaxValue)
            .ThenBy(d => d.Name, StringComparer.Ordinal);

    internal static TierReport Report(DaxTopology topology)
        => new(topology.Tiers.Select(t => new TierListing(t.Id, t.Nodes, t.AbstractDistanceStart, t.AbstractDistanceEnd)).ToArray(),
            Ordered(topology).Select(ToListing).ToArray(),
            topology.Regions.Select(r => new TierRegionListing(r.Name, KindName(r.Source), PersistenceName(r.Source.Persistence), r.Size, r.TargetNode,
                r.NumaNode, r.TargetMemoryNode?.Tier?.Id, NullIfEmpty(r.Source.Provider), Cxl(r.Source.CxlRegion))).ToArray());

    internal static TierDeviceListing ToListing(DaxDevice device)
    {
        MemoryNode? node = device.TargetMemoryNode;
        CxlRegion? cxl = device.Source?.CxlRegion;
        return new TierDeviceListing(device.Name, KindName(device.Source), PersistenceName(device.MemoryPersistence), device.Mode, device.Size,
            (long)device.Align, device.TargetNode, device.NumaNode, node?.Tier?.Id, NullIfEmpty(device.Source?.Provider),
            NullIfEmpty(device.Source?.ProviderDriver), device.Region?.Name,
            Cxl(cxl),
            Hmat(node?.Access0), Hmat(node?.Access1), device.MemoryBlockSize,
            device.MemoryBlocks?.Select(b => new MemoryBlockListing(b.Id, Hex(b.Start), b.StateText, b.IsOnline, b.ValidZones)).ToArray(),
            device.Ranges.Select(r => new MappingListing(r.Index, Hex(r.Start), Hex(r.End), (long)r.PageOffset)).ToArray());
    }

    // The attribute as the kernel wrote it; where a kernel has none (6.1), the mode the device tree implies.
    private static string ModeName(CxlRegion cxl) => cxl.ModeText.Length > 0 ? cxl.ModeText : cxl.Mode switch
    {
        CxlRegionMode.Ram => "ram",
        CxlRegionMode.Pmem => "pmem",
        _ => "unknown",
    };

    private static CxlRegionListing? Cxl(CxlRegion? cxl)
        => cxl is null ? null : new CxlRegionListing(cxl.Name, cxl.RootDecoder, ModeName(cxl), cxl.Size);

    private static HmatListing? Hmat(HmatPerformance? p)
        => p is null ? null : new HmatListing(p.Initiators, p.ReadLatencyNanoseconds, p.WriteLatencyNanoseconds, p.ReadBandwidthMBps, p.WriteBandwidthMBps);

    /// <summary><c>nvdimm</c>, <c>hmem</c>, <c>cxl</c> or <c>unknown</c>.</summary>
    internal static string KindName(DaxMemorySource? source) => source?.Kind switch
    {
        DaxMemoryKind.Nvdimm => "nvdimm",
        DaxMemoryKind.SoftReserved => "hmem",
        DaxMemoryKind.Cxl => "cxl",
        _ => "unknown",
    };

    /// <summary>The kind as the table shows it: with the CXL region and its mode.</summary>
    internal static string KindCell(DaxMemorySource? source)
        => source?.CxlRegion is CxlRegion cxl ? $"cxl {cxl.Name} ({ModeName(cxl)})" : KindName(source);

    internal static string PersistenceName(DaxMemoryPersistence persistence) => persistence switch
    {
        DaxMemoryPersistence.Persistent => "persistent",
        DaxMemoryPersistence.Volatile => "volatile",
        _ => "unknown",
    };

    /// <summary><c>read/write latency, read/write bandwidth</c> with <c>-</c> for a figure not reported; <c>-</c> when the node reports nothing for the class.</summary>
    internal static string HmatCell(HmatPerformance? p)
        => p is null ? "-" : $"{Figure(p.ReadLatencyNanoseconds)}/{Figure(p.WriteLatencyNanoseconds)}, {Figure(p.ReadBandwidthMBps)}/{Figure(p.WriteBandwidthMBps)}";

    /// <summary><c>1/2 online</c>, <c>-</c> for none, <c>unknown</c> when the ranges or the block size are not readable.</summary>
    internal static string BlocksCell(DaxDevice device) => device.MemoryBlocks switch
    {
        null => "unknown",
        { Count: 0 } => "-",
        var blocks => string.Create(CultureInfo.InvariantCulture, $"{blocks.Count(b => b.IsOnline)}/{blocks.Count} online"),
    };

    private static string Figure(uint? value) => value?.ToString(CultureInfo.InvariantCulture) ?? "-";

    private static string Hex(ulong value) => string.Create(CultureInfo.InvariantCulture, $"0x{value:x}");

    private static string? NullIfEmpty(string? text) => string.IsNullOrEmpty(text) ? null : text;
}
