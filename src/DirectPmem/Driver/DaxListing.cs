using System.Text.Json;
using System.Text.Json.Serialization;

namespace DirectPmem.Driver;

/// <summary>One device as <c>daxctl list</c> prints it (<c>chardev</c>, <c>size</c>, <c>target_node</c>, <c>align</c>, <c>mode</c>), plus what DirectPmem knows beyond it.</summary>
/// <param name="Chardev">The device's name (<c>dax0.0</c>).</param>
/// <param name="Size">The size in bytes.</param>
/// <param name="TargetNode">The target NUMA node, when known.</param>
/// <param name="Align">The alignment in bytes.</param>
/// <param name="Mode"><c>devdax</c>, <c>system-ram</c>, ...</param>
/// <param name="NumaNode">The NUMA node of the closest CPUs, when known.</param>
/// <param name="Region">The NVDIMM region's name, when the device has one.</param>
/// <param name="PersistenceDomain"><c>cpu_cache</c>, <c>memory_controller</c>, <c>page_cache</c>, <c>volatile</c> or <c>unknown</c>.</param>
/// <param name="Emulated">True for an emulated device; absent otherwise.</param>
/// <param name="Path">The path that is mapped (an emulated device's file); absent for a real device.</param>
public sealed record DaxDeviceListing(
    string Chardev,
    long Size,
    int? TargetNode,
    long Align,
    string Mode,
    int? NumaNode,
    string? Region,
    string PersistenceDomain,
    bool? Emulated,
    string? Path);

/// <summary>One NVDIMM region with its devices, for a listing.</summary>
/// <param name="Dev">The region's name (<c>region0</c>).</param>
/// <param name="Size">The size in bytes.</param>
/// <param name="Align">The region alignment, when exposed.</param>
/// <param name="NumaNode">The NUMA node, when known.</param>
/// <param name="PersistenceDomain"><c>cpu_cache</c>, <c>memory_controller</c> or <c>unknown</c>, as ndctl prints it.</param>
/// <param name="Badblocks">The bad ranges as <c>[offset, length]</c> byte pairs; absent when none.</param>
/// <param name="DeepFlush">Whether <c>deep_flush</c> exists.</param>
/// <param name="Devices">The device-DAX devices in the region.</param>
public sealed record DaxRegionListing(
    string Dev,
    long Size,
    long? Align,
    int? NumaNode,
    string PersistenceDomain,
    long[][]? Badblocks,
    bool DeepFlush,
    IReadOnlyList<DaxDeviceListing> Devices);

/// <summary>JSON shaped like <c>daxctl list</c> output, with System.Text.Json source generation (trim- and AOT-safe).</summary>
public static class DaxListing
{
    /// <summary>The listing of one device.</summary>
    /// <param name="device">The device.</param>
    /// <returns>The listing record.</returns>
    public static DaxDeviceListing ToListing(this DaxDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        return new DaxDeviceListing(device.Name, device.Size, device.TargetNode, (long)device.Align, device.Mode, device.NumaNode,
            device.Region?.Name, PersistenceName(device.Persistence), device.IsEmulated ? true : null, device.IsEmulated ? device.DevicePath : null);
    }

    /// <summary>The listing of one region and the given devices that belong to it.</summary>
    /// <param name="region">The region.</param>
    /// <param name="devices">Devices to pick the region's from.</param>
    /// <returns>The listing record.</returns>
    public static DaxRegionListing ToListing(this DaxRegion region, IEnumerable<DaxDevice> devices)
    {
        ArgumentNullException.ThrowIfNull(region);
        ArgumentNullException.ThrowIfNull(devices);
        return new DaxRegionListing(region.Name, region.Size, region.Align, region.NumaNode, PersistenceName(region.PersistenceDomain),
            region.BadBlocks.Count == 0 ? null : region.BadBlocks.Select(b => new[] { b.Offset, b.Length }).ToArray(),
            region.DeepFlushPresent,
            devices.Where(d => ReferenceEquals(d.Region, region) || d.Region?.ResolvedPath == region.ResolvedPath).Select(ToListing).ToArray());
    }

    /// <summary>A JSON array of devices, like <c>daxctl list</c>.</summary>
    /// <param name="devices">The devices.</param>
    /// <returns>Indented JSON.</returns>
    public static string Serialize(IEnumerable<DaxDevice> devices)
    {
        ArgumentNullException.ThrowIfNull(devices);
        return JsonSerializer.Serialize(devices.Select(ToListing).ToArray(), DaxJsonContext.Default.DaxDeviceListingArray);
    }

    /// <summary>A JSON array of regions with their devices, like <c>daxctl list -R -D</c>.</summary>
    /// <param name="topology">A scan result.</param>
    /// <returns>Indented JSON.</returns>
    public static string SerializeRegions(DaxTopology topology)
    {
        ArgumentNullException.ThrowIfNull(topology);
        return JsonSerializer.Serialize(topology.Regions.Select(r => r.ToListing(topology.Devices)).ToArray(), DaxJsonContext.Default.DaxRegionListingArray);
    }

    private static string PersistenceName(DaxPersistence persistence) => persistence switch
    {
        DaxPersistence.CpuCache => "cpu_cache",
        DaxPersistence.MemoryController => "memory_controller",
        DaxPersistence.PageCache => "page_cache",
        DaxPersistence.Volatile => "volatile",
        _ => "unknown",
    };
}

/// <summary>The source-generated serializer for the listings (snake_case names, nulls left out).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, WriteIndented = true)]
[JsonSerializable(typeof(DaxDeviceListing[]))]
[JsonSerializable(typeof(DaxRegionListing[]))]
public sealed partial class DaxJsonContext : JsonSerializerContext
{
}
