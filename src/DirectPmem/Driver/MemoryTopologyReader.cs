using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace DirectPmem.Driver;

/// <summary>
/// Reads what the kernel says about the memory behind dax devices: NUMA nodes and their HMAT
/// figures (<c>devices/system/node</c>), memory tiers (<c>devices/virtual/memory_tiering</c>),
/// memory blocks (<c>devices/system/memory</c>) and CXL regions (<c>bus/cxl/devices</c>). One
/// reader serves one scan and reads each node and the tier list once. Every number is validated;
/// a malformed one is a <see cref="DaxConfigurationException"/> naming the file.
/// </summary>
internal sealed class MemoryTopologyReader
{
    // Far above MAX_NUMNODES (1024 on x86-64): a list that names more nodes is not the kernel's.
    private const int MaxNodeId = 1 << 16;

    // A device whose ranges span more blocks than this is not one the kernel made (1 TiB in 4 KiB blocks is 2^28;
    // block sizes are 128 MiB and up on x86-64).
    private const long MaxBlocksPerDevice = 1L << 24;

    private readonly string _sysfsRoot;
    private readonly Dictionary<int, MemoryNode> _nodes = [];
    private Dictionary<int, MemoryTier>? _tierOfNode;
    private List<MemoryTier>? _tiers;
    // A broken tier list is one error for the scan, not one per device: nodes then have no tier.
    private DaxConfigurationException? _tierError;
    private StrongBox<long?>? _blockSize;
    private DaxConfigurationException? _blockSizeError;
    private (HashSet<int>? Cpu, HashSet<int>? Memory)? _has;

    internal MemoryTopologyReader(string sysfsRoot) => _sysfsRoot = sysfsRoot;

    private string NodeRoot => Path.Join(_sysfsRoot, "devices", "system", "node");

    private string MemoryRoot => Path.Join(_sysfsRoot, "devices", "system", "memory");

    /// <summary>The nodes read so far (every node a device or region named), ordered by id.</summary>
    internal IReadOnlyList<MemoryNode> Nodes => _nodes.Values.OrderBy(n => n.Id).ToList().AsReadOnly();

    /// <summary>Every memory tier, ordered by id; empty when the tier list is broken (see <see cref="Errors"/>).</summary>
    internal IReadOnlyList<MemoryTier> Tiers
    {
        get
        {
            LoadTiers();
            return _tiers!.AsReadOnly();
        }
    }

    /// <summary>
    /// The system-wide files that were broken: the tier list (a node list that is not one, a node in
    /// two tiers) and the memory block size. Each is one error for the scan, not one per device:
    /// nodes then have no tier, devices unknown memory blocks.
    /// </summary>
    internal IEnumerable<DaxConfigurationException> Errors
    {
        get
        {
            LoadTiers();
            BlockSize();
            return new[] { _tierError, _blockSizeError }.OfType<DaxConfigurationException>();
        }
    }

    /// <summary>Raises the first of <see cref="Errors"/>, for the calls that throw instead of collecting.</summary>
    internal void ThrowIfBroken()
    {
        if (Errors.FirstOrDefault() is { } error)
        {
            throw error;
        }
    }

    /// <summary>The node a device or region names, or null for none (absent or -1).</summary>
    internal MemoryNode? Node(int? id)
    {
        if (id is not int n || n < 0)
        {
            return null;
        }
        if (_nodes.TryGetValue(n, out MemoryNode? node))
        {
            return node;
        }
        LoadTiers();
        _has ??= (ReadOptionalNodeList(Path.Join(NodeRoot, "has_cpu")), ReadOptionalNodeList(Path.Join(NodeRoot, "has_memory")));
        string dir = Path.Join(NodeRoot, string.Create(CultureInfo.InvariantCulture, $"node{n}"));
        node = new MemoryNode(n, Directory.Exists(dir), _has.Value.Cpu?.Contains(n), _has.Value.Memory?.Contains(n),
            ReadAccess(dir, 0), ReadAccess(dir, 1), _tierOfNode!.GetValueOrDefault(n));
        _nodes.Add(n, node);
        return node;
    }

    /// <summary>
    /// Every node the kernel has: the <c>online</c> list, or the <c>nodeN</c> directories when the
    /// list is not exposed; ordered by id. Empty when there is no node directory at all.
    /// </summary>
    internal IReadOnlyList<MemoryNode> AllNodes()
    {
        string listPath = Path.Join(NodeRoot, "online");
        IEnumerable<int> ids;
        if (SysfsReader.TryReadText(listPath) is { } list)
        {
            ids = ParseNodeList(listPath, list);
        }
        else if (Directory.Exists(NodeRoot))
        {
            var found = new List<int>();
            foreach (string dir in Directory.EnumerateDirectories(NodeRoot, "node*"))
            {
                if (TryNodeId(Path.GetFileName(dir), out int id))
                {
                    found.Add(id);
                }
            }
            ids = found;
        }
        else
        {
            ids = [];
        }
        return ids.Order().Select(id => Node(id)!).ToList().AsReadOnly();
    }

    private static HmatPerformance? ReadAccess(string nodeDir, int accessClass)
    {
        string dir = Path.Join(nodeDir, string.Create(CultureInfo.InvariantCulture, $"access{accessClass}"), "initiators");
        if (!Directory.Exists(dir))
        {
            return null;
        }
        var initiators = new List<int>();
        foreach (string entry in Directory.EnumerateFileSystemEntries(dir, "node*"))
        {
            if (TryNodeId(Path.GetFileName(entry), out int id))
            {
                initiators.Add(id);
            }
        }
        initiators.Sort();
        return new HmatPerformance(accessClass, initiators.AsReadOnly(),
            ReadFigure(Path.Join(dir, "read_latency")), ReadFigure(Path.Join(dir, "write_latency")),
            ReadFigure(Path.Join(dir, "read_bandwidth")), ReadFigure(Path.Join(dir, "write_bandwidth")));
    }

    /// <summary>An HMAT figure (<c>%u</c>): null when the file is missing or reads 0 (the kernel prints 0 for what HMAT did not report).</summary>
    internal static uint? ReadFigure(string path)
    {
        string? text = SysfsReader.TryReadText(path);
        if (text is null)
        {
            return null;
        }
        if (!ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out ulong value))
        {
            throw new DaxConfigurationException(path, DaxConfigurationRule.NotANumber, $"'{SysfsReader.Shorten(text)}' is not a decimal HMAT figure.");
        }
        if (value > uint.MaxValue)
        {
            throw new DaxConfigurationException(path, DaxConfigurationRule.OutOfRange,
                string.Create(CultureInfo.InvariantCulture, $"HMAT figure {value} does not fit the kernel's 32-bit field."));
        }
        return value == 0 ? null : (uint)value;
    }

    private void LoadTiers()
    {
        if (_tiers is not null)
        {
            return;
        }
        string root = Path.Join(_sysfsRoot, "devices", "virtual", "memory_tiering");
        try
        {
            (_tiers, _tierOfNode) = ReadTiers(root);
        }
        catch (Exception e) when (e is DaxConfigurationException or IOException or UnauthorizedAccessException)
        {
            _tierError = e as DaxConfigurationException
                ?? new DaxConfigurationException(root, DaxConfigurationRule.MissingAttribute, $"the memory tiers cannot be read ({e.Message}).");
            (_tiers, _tierOfNode) = ([], []);
        }
    }

    private static (List<MemoryTier> Tiers, Dictionary<int, MemoryTier> OfNode) ReadTiers(string root)
    {
        var tiers = new List<MemoryTier>();
        var ofNode = new Dictionary<int, MemoryTier>();
        if (Directory.Exists(root))
        {
            foreach (string dir in Directory.EnumerateDirectories(root, "memory_tier*"))
            {
                string name = Path.GetFileName(dir);
                if (!int.TryParse(name.AsSpan("memory_tier".Length), NumberStyles.None, CultureInfo.InvariantCulture, out int id))
                {
                    continue;
                }
                string listPath = Path.Join(dir, "nodelist");
                IReadOnlyList<int> nodes = ParseNodeList(listPath, SysfsReader.ReadText(listPath)).Order().ToList().AsReadOnly();
                var tier = new MemoryTier(id, nodes);
                foreach (int node in nodes)
                {
                    if (!ofNode.TryAdd(node, tier))
                    {
                        throw new DaxConfigurationException(listPath, DaxConfigurationRule.OutOfRange,
                            string.Create(CultureInfo.InvariantCulture, $"node {node} is also in memory_tier{ofNode[node].Id}; a node is in one tier."));
                    }
                }
                tiers.Add(tier);
            }
        }
        tiers.Sort((a, b) => a.Id.CompareTo(b.Id));
        return (tiers, ofNode);
    }

    private static HashSet<int>? ReadOptionalNodeList(string path)
    {
        string? text = SysfsReader.TryReadText(path);
        return text is null ? null : ParseNodeList(path, text);
    }

    /// <summary>Parses a kernel node list (<c>%*pbl</c>: <c>0-2,5</c>; empty for none).</summary>
    internal static HashSet<int> ParseNodeList(string path, string text)
    {
        var nodes = new HashSet<int>();
        if (text.Length == 0)
        {
            return nodes;
        }
        foreach (string part in text.Split(','))
        {
            int dash = part.IndexOf('-', StringComparison.Ordinal);
            ReadOnlySpan<char> first = dash < 0 ? part : part.AsSpan(0, dash);
            ReadOnlySpan<char> last = dash < 0 ? part : part.AsSpan(dash + 1);
            if (!int.TryParse(first, NumberStyles.None, CultureInfo.InvariantCulture, out int from)
                || !int.TryParse(last, NumberStyles.None, CultureInfo.InvariantCulture, out int to))
            {
                throw new DaxConfigurationException(path, DaxConfigurationRule.NotANumber, $"'{SysfsReader.Shorten(text)}' is not a node list (such as 0-2,5).");
            }
            if (to < from || to >= MaxNodeId)
            {
                throw new DaxConfigurationException(path, DaxConfigurationRule.OutOfRange,
                    string.Create(CultureInfo.InvariantCulture, $"'{SysfsReader.Shorten(part)}' is not a node range below {MaxNodeId}."));
            }
            for (int n = from; n <= to; n++)
            {
                nodes.Add(n);
            }
        }
        return nodes;
    }

    /// <summary>The memory block size (<c>block_size_bytes</c>, hexadecimal without a prefix), or null when not exposed or broken (see <see cref="Errors"/>).</summary>
    internal long? BlockSize()
    {
        if (_blockSize is { } known)
        {
            return known.Value;
        }
        long? size = null;
        try
        {
            size = ReadBlockSize();
        }
        catch (DaxConfigurationException e)
        {
            _blockSizeError = e;
        }
        _blockSize = new StrongBox<long?>(size);
        return size;
    }

    private long? ReadBlockSize()
    {
        string path = Path.Join(MemoryRoot, "block_size_bytes");
        string? text = SysfsReader.TryReadText(path);
        if (text is null)
        {
            return null;
        }
        if (!TryParseHex(text, out ulong value))
        {
            throw new DaxConfigurationException(path, DaxConfigurationRule.NotANumber, $"'{SysfsReader.Shorten(text)}' is not a hexadecimal block size.");
        }
        if (value < 4096 || value > long.MaxValue || !BitOperations.IsPow2(value))
        {
            throw new DaxConfigurationException(path, DaxConfigurationRule.NotAPowerOfTwo,
                string.Create(CultureInfo.InvariantCulture, $"block size 0x{value:x} is not a power of two of at least 4096 bytes."));
        }
        return (long)value;
    }

    /// <summary>
    /// The memory blocks whose start lies in one of the ranges (daxctl's rule for a device's
    /// blocks), in address order; null when the ranges or the block size are unknown. A device bound
    /// to device_dax has none (only kmem hot-adds blocks): they are not looked for, which would take
    /// a stat per block-sized step of its ranges at every scan and open.
    /// </summary>
    internal IReadOnlyList<MemoryBlock>? Blocks(IReadOnlyList<DaxDeviceRange> ranges, DaxDeviceMode mode)
    {
        long? blockSize = BlockSize();
        if (ranges.Count == 0 || blockSize is not long size)
        {
            return null;
        }
        if (mode == DaxDeviceMode.DeviceDax)
        {
            return [];
        }
        var blocks = new List<MemoryBlock>();
        foreach (DaxDeviceRange range in ranges.OrderBy(r => r.Start))
        {
            ulong first = range.Start / (ulong)size + (range.Start % (ulong)size == 0 ? 0UL : 1UL);
            ulong last = range.End / (ulong)size;
            if (last >= first && last - first >= MaxBlocksPerDevice)
            {
                throw new DaxConfigurationException(Path.Join(MemoryRoot, "block_size_bytes"), DaxConfigurationRule.OutOfRange,
                    string.Create(CultureInfo.InvariantCulture, $"{range} spans more than {MaxBlocksPerDevice} blocks of 0x{size:x} bytes."));
            }
            for (ulong id = first; id <= last && last >= first; id++)
            {
                string dir = Path.Join(MemoryRoot, string.Create(CultureInfo.InvariantCulture, $"memory{id}"));
                if (Directory.Exists(dir))
                {
                    blocks.Add(ReadBlock(dir, (long)id, size));
                }
            }
        }
        return blocks.AsReadOnly();
    }

    private static MemoryBlock ReadBlock(string dir, long id, long size)
    {
        string indexPath = Path.Join(dir, "phys_index");
        string indexText = SysfsReader.ReadText(indexPath);
        if (!TryParseHex(indexText, out ulong index))
        {
            throw new DaxConfigurationException(indexPath, DaxConfigurationRule.NotANumber, $"'{SysfsReader.Shorten(indexText)}' is not a hexadecimal block index.");
        }
        if (index != (ulong)id)
        {
            throw new DaxConfigurationException(indexPath, DaxConfigurationRule.InvalidRange,
                string.Create(CultureInfo.InvariantCulture, $"block index 0x{index:x} is not the directory's ({id})."));
        }
        string statePath = Path.Join(dir, "state");
        string stateText = SysfsReader.ReadText(statePath);
        MemoryBlockState state = stateText switch
        {
            "online" => MemoryBlockState.Online,
            "offline" => MemoryBlockState.Offline,
            "going-offline" => MemoryBlockState.GoingOffline,
            _ => MemoryBlockState.Unknown,
        };
        string onlinePath = Path.Join(dir, "online");
        bool online = SysfsReader.ReadText(onlinePath) switch
        {
            "1" => true,
            "0" => false,
            string other => throw new DaxConfigurationException(onlinePath, DaxConfigurationRule.NotANumber, $"'{SysfsReader.Shorten(other)}' is not 0 or 1."),
        };
        string zones = SysfsReader.TryReadText(Path.Join(dir, "valid_zones")) ?? "";
        IReadOnlyList<string> validZones = zones is "" or "none"
            ? []
            : zones.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList().AsReadOnly();
        return new MemoryBlock(id, (ulong)id * (ulong)size, size, state, stateText, online, validZones);
    }

    /// <summary>
    /// The CXL region behind <c>bus/cxl/devices/NAME</c> or the resolved directory, or null when it
    /// does not exist. Kernels before 6.3 have no <c>mode</c> attribute (they make pmem regions
    /// only); then the mode is <paramref name="impliedMode"/>, the one the path the region was
    /// reached by implies: a region under the CXL nvdimm bridge is pmem (<c>drivers/cxl/pmem.c</c>),
    /// one under a <c>cxl_dax_region</c> is ram (<c>drivers/dax/cxl.c</c>).
    /// </summary>
    internal static CxlRegion? ReadCxlRegion(string regionDir, CxlRegionMode impliedMode)
    {
        if (!Directory.Exists(regionDir))
        {
            return null;
        }
        string resolved = SysfsReader.ResolvePath(regionDir);
        string modeText = SysfsReader.TryReadText(Path.Join(resolved, "mode")) ?? "";
        CxlRegionMode mode = modeText switch
        {
            "ram" => CxlRegionMode.Ram,
            "pmem" => CxlRegionMode.Pmem,
            "" => impliedMode,
            _ => CxlRegionMode.Unknown,
        };
        string sizePath = Path.Join(resolved, "size");
        ulong? size = SysfsReader.TryReadUInt64(sizePath);
        if (size > long.MaxValue)
        {
            throw new DaxConfigurationException(sizePath, DaxConfigurationRule.OutOfRange,
                string.Create(CultureInfo.InvariantCulture, $"size {size} must be below 2^63."));
        }
        return new CxlRegion(Path.GetFileName(resolved), Path.GetFileName(Path.GetDirectoryName(resolved)) ?? "", mode, modeText,
            (long?)size, SysfsReader.TryReadUInt64(Path.Join(resolved, "resource")));
    }

    /// <summary>
    /// Where an NVDIMM region's memory comes from: a region under a CXL nvdimm bridge is a CXL pmem
    /// region whose nd region id is the CXL region's id (<c>drivers/cxl/pmem.c</c> sets
    /// <c>memregion</c> to it); any other is an NVDIMM.
    /// </summary>
    internal DaxMemorySource RegionSource(string resolvedRegion, int id)
    {
        string bus = Path.GetDirectoryName(resolvedRegion) ?? resolvedRegion;
        string busDriver = SysfsReader.LinkName(Path.Join(bus, "driver")) ?? "";
        if (!HasAncestor(resolvedRegion, "nvdimm-bridge"))
        {
            return new DaxMemorySource(DaxMemoryKind.Nvdimm, Path.GetFileName(bus), busDriver, null);
        }
        CxlRegion? cxl = ReadCxlRegion(Path.Join(_sysfsRoot, "bus", "cxl", "devices", string.Create(CultureInfo.InvariantCulture, $"region{id}")), CxlRegionMode.Pmem);
        return new DaxMemorySource(DaxMemoryKind.Cxl, Path.GetFileName(bus), busDriver, cxl);
    }

    /// <summary>Where a dax device's memory comes from, from its parent (the dax region provider) and the driver bound to it.</summary>
    internal DaxMemorySource DeviceSource(string resolvedDevice, DaxRegion? region)
    {
        string parent = Path.GetDirectoryName(resolvedDevice) ?? resolvedDevice;
        string parentName = Path.GetFileName(parent);
        string driver = SysfsReader.LinkName(Path.Join(parent, "driver")) ?? "";
        string grandparent = Path.GetDirectoryName(parent) ?? parent;
        DaxMemorySource Named(DaxMemorySource source) => new(source.Kind, parentName, driver, source.CxlRegion);

        if (region is not null)
        {
            return Named(region.Source);
        }
        if (driver == "cxl_dax_region" || (driver.Length == 0 && IsNumbered(parentName, "dax_region") && IsNumbered(Path.GetFileName(grandparent), "region")))
        {
            return new DaxMemorySource(DaxMemoryKind.Cxl, parentName, driver, ReadCxlRegion(grandparent, CxlRegionMode.Ram));
        }
        if (driver == "hmem" || (driver.Length == 0 && parentName.StartsWith("hmem", StringComparison.Ordinal)))
        {
            return new DaxMemorySource(DaxMemoryKind.SoftReserved, parentName, driver, null);
        }
        string grandparentName = Path.GetFileName(grandparent);
        if (driver.StartsWith("dax_pmem", StringComparison.Ordinal) && IsNumbered(grandparentName, "region"))
        {
            // The nd region broke a rule and is not in the scan; the device still says where it lives.
            return Named(RegionSource(grandparent, int.Parse(grandparentName.AsSpan("region".Length), NumberStyles.None, CultureInfo.InvariantCulture)));
        }
        return new DaxMemorySource(DaxMemoryKind.Unknown, parentName, driver, null);
    }

    private static bool HasAncestor(string path, string prefix)
    {
        for (string? dir = Path.GetDirectoryName(path); !string.IsNullOrEmpty(dir); dir = Path.GetDirectoryName(dir))
        {
            if (IsNumbered(Path.GetFileName(dir), prefix))
            {
                return true;
            }
        }
        return false;
    }

    private static bool IsNumbered(string name, string prefix)
        => name.Length > prefix.Length && name.StartsWith(prefix, StringComparison.Ordinal)
            && int.TryParse(name.AsSpan(prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out _);

    private static bool TryNodeId(string name, out int id)
    {
        id = 0;
        return IsNumbered(name, "node") && int.TryParse(name.AsSpan(4), NumberStyles.None, CultureInfo.InvariantCulture, out id);
    }

    private static bool TryParseHex(string text, out ulong value)
        => ulong.TryParse(text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? text.AsSpan(2) : text,
            NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value) && text.Length > 0;
}
