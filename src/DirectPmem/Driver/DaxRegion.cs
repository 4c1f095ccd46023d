using System.Globalization;
using DirectPmem.Geometry;
using DirectPmem.Interop;

namespace DirectPmem.Driver;

/// <summary>What makes stores to a device durable, as the platform reports it.</summary>
public enum DaxPersistence
{
    /// <summary>The platform does not say (no <c>persistence_domain</c>, or a device with no NVDIMM region such as CXL soft-reserved memory).</summary>
    Unknown,

    /// <summary>Volatile memory: nothing survives power loss (tmpfs, memfd, hugetlbfs, anonymous memory).</summary>
    Volatile,

    /// <summary>An ordinary file: durable after msync writes the dirty pages back.</summary>
    PageCache,

    /// <summary>ADR: stores are durable once they reach the memory controller (cache flush + fence).</summary>
    MemoryController,

    /// <summary>eADR: the CPU caches are flushed on power loss; a fence is enough.</summary>
    CpuCache,
}

/// <summary>
/// An NVDIMM region (<c>/sys/bus/nd/devices/regionN</c>): a range of persistent memory, its
/// persistence domain, its known bad blocks and whether it has a deep-flush control.
/// </summary>
public sealed class DaxRegion
{
    internal DaxRegion(string name, string sysfsPath, string resolvedPath, long size, long? align, DaxPersistence persistence,
        string persistenceText, IReadOnlyList<PmemRange> badBlocks, bool deepFlushPresent, bool deepFlushWritable, int? numaNode,
        int? targetNode, ulong? resource)
    {
        Name = name;
        SysfsPath = sysfsPath;
        ResolvedPath = resolvedPath;
        Size = size;
        Align = align;
        PersistenceDomain = persistence;
        PersistenceDomainText = persistenceText;
        BadBlocks = badBlocks;
        DeepFlushPresent = deepFlushPresent;
        DeepFlushWritable = deepFlushWritable;
        NumaNode = numaNode;
        TargetNode = targetNode;
        Resource = resource;
    }

    /// <summary>The region's name, for example <c>region0</c>.</summary>
    public string Name { get; }

    /// <summary>The region's number (<c>0</c> for <c>region0</c>).</summary>
    public int Id => int.Parse(Name.AsSpan("region".Length), NumberStyles.None, CultureInfo.InvariantCulture);

    /// <summary>The region's directory under <c>bus/nd/devices</c>.</summary>
    public string SysfsPath { get; }

    /// <summary>The region's directory with every symbolic link resolved (under <c>devices/</c>).</summary>
    public string ResolvedPath { get; }

    /// <summary>The region's size in bytes.</summary>
    public long Size { get; }

    /// <summary>The region's allocation alignment (<c>align</c>), when the kernel exposes it.</summary>
    public long? Align { get; }

    /// <summary>
    /// The persistence domain from <c>persistence_domain</c>: <c>cpu_cache</c> is eADR,
    /// <c>memory_controller</c> ADR; a missing or empty file is <see cref="DaxPersistence.Unknown"/>.
    /// </summary>
    public DaxPersistence PersistenceDomain { get; }

    /// <summary>The raw content of <c>persistence_domain</c> (empty when missing).</summary>
    public string PersistenceDomainText { get; }

    /// <summary>The known bad ranges, in bytes from the start of the region (from <c>badblocks</c>, 512-byte sectors).</summary>
    public IReadOnlyList<PmemRange> BadBlocks { get; }

    /// <summary>Whether the region has a <c>deep_flush</c> attribute (the kernel hides it when the region's flush mechanism is unknown).</summary>
    public bool DeepFlushPresent { get; }

    /// <summary>Whether this process may write <c>deep_flush</c> (to flush the write-pending queues).</summary>
    public bool DeepFlushWritable { get; }

    /// <summary>
    /// The <c>deep_flush</c> attribute to write <c>1</c> to for a deep flush of the region (the
    /// kernel's <c>nvdimm_flush</c>, what PMDK's <c>pmem2_deep_flush</c> writes), or null when the
    /// region has none.
    /// </summary>
    public string? DeepFlushPath { get; private init; }

    /// <summary>
    /// Whether the region has flush hints, so that a deep flush does something: <c>deep_flush</c>
    /// reads <c>1</c>. It reads <c>0</c> (and is read-only) where the platform has no flush hints,
    /// in which case PMDK treats a deep flush as done once the caches are flushed.
    /// </summary>
    public bool DeepFlushSupported { get; private init; }

    /// <summary>The NUMA node of the CPUs closest to the region (-1 for none), when exposed.</summary>
    public int? NumaNode { get; }

    /// <summary>The NUMA node the memory would join as system RAM (-1 for none), when exposed.</summary>
    public int? TargetNode { get; }

    /// <summary>The physical start address (<c>resource</c>, root-only), or null when not readable.</summary>
    public ulong? Resource { get; }

    /// <summary>Where the region's memory comes from: an NVDIMM, or a CXL pmem region (and which one).</summary>
    public DaxMemorySource Source { get; internal set; } = new(DaxMemoryKind.Unknown, "", "", null);

    /// <summary>The node the memory joins as system RAM (<see cref="TargetNode"/>) with its HMAT figures and memory tier; null when the region names none.</summary>
    public MemoryNode? TargetMemoryNode { get; internal set; }

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Name}: {Size} bytes, persistence {PersistenceDomain}, {BadBlocks.Count} bad range(s)");

    /// <summary>Validates a region read by <see cref="NdRegionReader"/>; every number is checked and nothing is built from one that breaks a rule.</summary>
    internal static DaxRegion FromAttributes(NdRegionAttributes raw)
    {
        string resolved = SysfsReader.ResolvePath(raw.Path);
        long size = SysfsReader.ParseSize(raw.Attribute("size"), raw.Size);
        ulong? alignValue = SysfsReader.TryParseUInt64(raw.Attribute("align"), raw.Align);
        if (alignValue is ulong a && (a == 0 || !System.Numerics.BitOperations.IsPow2(a) || a > long.MaxValue))
        {
            throw new DaxConfigurationException(raw.Attribute("align"), DaxConfigurationRule.NotAPowerOfTwo,
                string.Create(CultureInfo.InvariantCulture, $"region alignment {a} is not a power of two."));
        }
        DaxPersistence persistence = raw.PersistenceDomain switch
        {
            NdPersistenceDomain.CpuCache => DaxPersistence.CpuCache,
            NdPersistenceDomain.MemoryController => DaxPersistence.MemoryController,
            _ => DaxPersistence.Unknown,
        };
        IReadOnlyList<PmemRange> badBlocks = ParseBadBlocks(raw.Attribute("badblocks"), raw.BadBlocks ?? "", size);
        bool deepFlushSupported = raw.DeepFlushText switch
        {
            null => false, // missing, or present but unreadable by this user
            "1" => true,
            "0" => false,
            _ => throw new DaxConfigurationException(raw.Attribute("deep_flush"), DaxConfigurationRule.OutOfRange,
                $"'{raw.DeepFlushText}' is not 0 (no flush hints) or 1 (flush hints present)."),
        };
        return new DaxRegion(raw.Name, raw.Path, resolved, size, (long?)alignValue, persistence, raw.PersistenceDomainText ?? "", badBlocks,
            raw.DeepFlushPresent, raw.DeepFlushWritable, SysfsReader.ParseNode(raw.Attribute("numa_node"), raw.NumaNode),
            SysfsReader.ParseNode(raw.Attribute("target_node"), raw.TargetNode),
            SysfsReader.TryParseUInt64(raw.Attribute("resource"), raw.Resource))
        {
            DeepFlushPath = raw.DeepFlushPresent ? raw.Attribute("deep_flush") : null,
            DeepFlushSupported = deepFlushSupported,
        };
    }

    /// <summary>Parses <c>badblocks</c>: one <c>sector count</c> pair per line, in 512-byte sectors (the one parser, <see cref="BadBlockMath.TryParse"/>).</summary>
    internal static IReadOnlyList<PmemRange> ParseBadBlocks(string path, string text, long regionSize)
    {
        var ranges = new List<PmemRange>();
        string? problem = BadBlockMath.TryParse(text, regionSize, ranges);
        if (problem is not null)
        {
            throw new DaxConfigurationException(path, DaxConfigurationRule.BadBlockSyntax, problem + ".");
        }
        return ranges.AsReadOnly();
    }
}
