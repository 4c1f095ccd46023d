using DirectPmem.Driver;

namespace DirectPmem.Tool.Cli;

/// <summary>One device as <c>daxctl list</c> prints it (<c>chardev</c>, <c>size</c>, <c>target_node</c>, <c>align</c>, <c>mode</c>), plus what DirectPmem knows beyond it.</summary>
internal sealed record DaxDeviceListing(
    string Chardev,
    long Size,
    int? TargetNode,
    long Align,
    string Mode,
    int? NumaNode,
    string? Region,
    string PersistenceDomain,
    bool? Emulated,
    string? Path,
    BadRangeListing? BadRanges = null);

/// <summary>One NVDIMM region with its devices, as <c>daxctl list -R -D</c> prints it.</summary>
internal sealed record DaxRegionListing(
    string Dev,
    long Size,
    long? Align,
    int? NumaNode,
    string PersistenceDomain,
    long[][]? Badblocks,
    bool DeepFlush,
    IReadOnlyList<DaxDeviceListing> Devices);

/// <summary>Builds the daxctl-shaped listings; <see cref="ToolJsonContext"/> serializes them.</summary>
internal static class DaxListing
{
    internal static DaxDeviceListing ToListing(DaxDevice device)
        => new(device.Name, device.Size, device.TargetNode, (long)device.Align, device.Mode, device.NumaNode,
            device.Region?.Name, PersistenceName(device.Persistence), device.IsEmulated ? true : null, device.IsEmulated ? device.DevicePath : null,
            BadRangeListing.From(device.GetBadRanges()));

    internal static DaxRegionListing ToListing(DaxRegion region, IEnumerable<DaxDevice> devices)
        => new(region.Name, region.Size, region.Align, region.NumaNode, PersistenceName(region.PersistenceDomain),
            region.BadBlocks.Count == 0 ? null : region.BadBlocks.Select(b => new[] { b.Offset, b.Length }).ToArray(),
            region.DeepFlushPresent,
            devices.Where(d => ReferenceEquals(d.Region, region) || d.Region?.ResolvedPath == region.ResolvedPath).Select(ToListing).ToArray());

    internal static DaxDeviceListing[] Devices(IEnumerable<DaxDevice> devices) => devices.Select(ToListing).ToArray();

    internal static DaxRegionListing[] Regions(DaxTopology topology)
        => topology.Regions.Select(r => ToListing(r, topology.Devices)).ToArray();

    /// <summary>The persistence domain as ndctl spells it.</summary>
    internal static string PersistenceName(DaxPersistence persistence) => persistence switch
    {
        DaxPersistence.CpuCache => "cpu_cache",
        DaxPersistence.MemoryController => "memory_controller",
        DaxPersistence.PageCache => "page_cache",
        DaxPersistence.Volatile => "volatile",
        _ => "unknown",
    };
}
