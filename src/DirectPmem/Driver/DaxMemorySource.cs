using System.Globalization;

namespace DirectPmem.Driver;

/// <summary>Where the memory behind a dax device or region comes from, as the kernel's device tree says.</summary>
public enum DaxMemoryKind
{
    /// <summary>The sysfs path matches none of the kernel's layouts.</summary>
    Unknown,

    /// <summary>An NVDIMM (ACPI NFIT) region: a namespace in devdax mode under an <c>ndbus</c>, driven by <c>dax_pmem</c>.</summary>
    Nvdimm,

    /// <summary>Soft-reserved memory (EFI_MEMORY_SP, HBM or similar) under an <c>hmem</c> platform device, driven by <c>dax_hmem</c>.</summary>
    SoftReserved,

    /// <summary>A CXL region: a ram region through <c>cxl_dax_region</c>, or a pmem region through the CXL nvdimm bridge and <c>dax_pmem</c>.</summary>
    Cxl,
}

/// <summary>Whether the memory keeps its contents across power loss.</summary>
public enum DaxMemoryPersistence
{
    /// <summary>The layout does not say.</summary>
    Unknown,

    /// <summary>Persistent memory (an NVDIMM or a CXL pmem region).</summary>
    Persistent,

    /// <summary>Volatile memory (soft-reserved memory or a CXL ram region).</summary>
    Volatile,
}

/// <summary>The decoder mode of a CXL region (its <c>mode</c> attribute).</summary>
public enum CxlRegionMode
{
    /// <summary>The attribute is missing or names neither mode.</summary>
    Unknown,

    /// <summary><c>ram</c>: volatile memory.</summary>
    Ram,

    /// <summary><c>pmem</c>: persistent memory.</summary>
    Pmem,
}

/// <summary>A CXL region (<c>/sys/bus/cxl/devices/regionN</c>) that backs a dax device or NVDIMM region. Built only by discovery.</summary>
public sealed class CxlRegion
{
    internal CxlRegion(string name, string rootDecoder, CxlRegionMode mode, string modeText, long? size, ulong? resource)
    {
        Name = name;
        RootDecoder = rootDecoder;
        Mode = mode;
        ModeText = modeText;
        Size = size;
        Resource = resource;
    }

    /// <summary>The region's name, for example <c>region0</c>.</summary>
    public string Name { get; }

    /// <summary>The root decoder (CXL window) the region was created under, for example <c>decoder0.0</c>.</summary>
    public string RootDecoder { get; }

    /// <summary>
    /// The region's mode: ram (volatile) or pmem (persistent). Kernels before 6.3 have no
    /// <c>mode</c> attribute (<see cref="ModeText"/> is empty) and make pmem regions only; the mode
    /// is then the one the device tree implies (a region behind the CXL nvdimm bridge is pmem).
    /// </summary>
    public CxlRegionMode Mode { get; }

    /// <summary>The raw content of <c>mode</c> (empty when missing).</summary>
    public string ModeText { get; }

    /// <summary>The region's size in bytes (<c>size</c>), when exposed.</summary>
    public long? Size { get; }

    /// <summary>The region's host physical start address (<c>resource</c>, root-only), when readable.</summary>
    public ulong? Resource { get; }

    /// <inheritdoc/>
    public override string ToString() => ModeText.Length != 0 || Mode == CxlRegionMode.Unknown
        ? $"{Name} ({(ModeText.Length != 0 ? ModeText : "mode unknown")}) under {RootDecoder}"
        : $"{Name} ({Mode.ToString().ToLowerInvariant()}, implied: no mode attribute) under {RootDecoder}";
}

/// <summary>
/// Where the memory behind a dax device or NVDIMM region comes from, read from the sysfs path and
/// driver links as the kernel lays them out (<c>drivers/dax/pmem.c</c>, <c>hmem/</c>, <c>cxl.c</c>,
/// <c>drivers/cxl/pmem.c</c>). Built only by discovery.
/// </summary>
public sealed class DaxMemorySource
{
    internal DaxMemorySource(DaxMemoryKind kind, string provider, string providerDriver, CxlRegion? cxlRegion)
    {
        Kind = kind;
        Provider = provider;
        ProviderDriver = providerDriver;
        CxlRegion = cxlRegion;
    }

    /// <summary>The kind of memory.</summary>
    public DaxMemoryKind Kind { get; }

    /// <summary>
    /// The device that provides the dax region: the nd dax personality (<c>dax0.0</c>), the hmem
    /// platform device (<c>hmem.0</c>), the CXL dax region (<c>dax_region0</c>) or, for an NVDIMM
    /// region itself, the bus (<c>ndbus0</c>); empty when unknown.
    /// </summary>
    public string Provider { get; }

    /// <summary>The driver bound to <see cref="Provider"/> (<c>dax_pmem</c>, <c>hmem</c>, <c>cxl_dax_region</c>, <c>nd_bus</c>), or empty when no driver link is exposed.</summary>
    public string ProviderDriver { get; }

    /// <summary>The CXL region behind the memory, for <see cref="DaxMemoryKind.Cxl"/>; null otherwise or when the region cannot be found.</summary>
    public CxlRegion? CxlRegion { get; }

    /// <summary>
    /// Persistent for NVDIMM and CXL pmem regions, volatile for soft-reserved memory and CXL ram
    /// regions (the kernel gives soft-reserved memory no persistence), unknown otherwise.
    /// </summary>
    public DaxMemoryPersistence Persistence => Kind switch
    {
        DaxMemoryKind.Nvdimm => DaxMemoryPersistence.Persistent,
        DaxMemoryKind.SoftReserved => DaxMemoryPersistence.Volatile,
        DaxMemoryKind.Cxl => CxlRegion?.Mode switch
        {
            CxlRegionMode.Pmem => DaxMemoryPersistence.Persistent,
            CxlRegionMode.Ram => DaxMemoryPersistence.Volatile,
            _ => DaxMemoryPersistence.Unknown,
        },
        _ => DaxMemoryPersistence.Unknown,
    };

    /// <inheritdoc/>
    public override string ToString() => CxlRegion is null
        ? string.Create(CultureInfo.InvariantCulture, $"{Kind} via {Provider}")
        : string.Create(CultureInfo.InvariantCulture, $"{Kind} {CxlRegion} via {Provider}");
}
