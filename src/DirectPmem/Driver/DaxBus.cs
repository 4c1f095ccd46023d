using System.Collections.ObjectModel;
using System.Globalization;
using DirectPmem.Geometry;
using DirectPmem.Internal;
using DirectPmem.Interop;
using DirectPmem.Mapping;

namespace DirectPmem.Driver;

/// <summary>
/// The result of one scan of a sysfs tree: the regions and devices that passed every rule, and
/// one typed error for each device or region that did not (it is left out, never half built).
/// Made only by <see cref="DaxBus.Scan"/>.
/// </summary>
public sealed class DaxTopology
{
    internal DaxTopology(IReadOnlyList<DaxRegion> regions, IReadOnlyList<DaxDevice> devices, IReadOnlyList<DaxConfigurationException> errors,
        IReadOnlyList<MemoryNode> nodes, IReadOnlyList<MemoryTier> tiers)
    {
        Regions = regions;
        Devices = devices;
        Errors = errors;
        Nodes = nodes;
        Tiers = tiers;
    }

    /// <summary>The NUMA nodes the devices and regions name as their target or CPU node, ordered by id.</summary>
    public IReadOnlyList<MemoryNode> Nodes { get; }

    /// <summary>
    /// Every memory tier the kernel reports (<c>devices/virtual/memory_tiering</c>), ordered by id
    /// (lower is faster); empty when the kernel has none, or when the list is broken (then one
    /// error in <see cref="Errors"/>, and no node has a tier).
    /// </summary>
    public IReadOnlyList<MemoryTier> Tiers { get; }

    /// <summary>The NVDIMM regions, ordered by name.</summary>
    public IReadOnlyList<DaxRegion> Regions { get; }

    /// <summary>The device-DAX devices, ordered by name.</summary>
    public IReadOnlyList<DaxDevice> Devices { get; }

    /// <summary>The devices and regions that broke a rule, and the directories that could not be listed.</summary>
    public IReadOnlyList<DaxConfigurationException> Errors { get; }
}

/// <summary>
/// Discovers device-DAX devices (<c>bus/dax/devices</c>) and NVDIMM regions (<c>bus/nd/devices</c>)
/// under a sysfs root: <c>/sys</c> by default, or a fixture tree. The user-space twin of the
/// kernel's <c>drivers/dax/bus.c</c>: every size, alignment and range is validated before a
/// <see cref="DaxDevice"/> is built.
/// </summary>
public sealed partial class DaxBus
{
    /// <summary>The bus of the running kernel: sysfs at <c>/sys</c>, device nodes in <c>/dev</c>.</summary>
    public static DaxBus Default { get; } = new("/sys", "/dev");

    /// <summary>Creates a bus over a sysfs tree.</summary>
    /// <param name="sysfsRoot">The directory that plays <c>/sys</c>.</param>
    /// <param name="deviceRoot">The directory that holds the device nodes (<c>/dev</c>).</param>
    public DaxBus(string sysfsRoot, string deviceRoot = "/dev")
    {
        PathValidation.Validate(sysfsRoot, nameof(sysfsRoot));
        PathValidation.Validate(deviceRoot, nameof(deviceRoot));
        SysfsRoot = sysfsRoot;
        DeviceRoot = deviceRoot;
    }

    /// <summary>The directory that plays <c>/sys</c>.</summary>
    public string SysfsRoot { get; }

    /// <summary>The directory that holds the device nodes.</summary>
    public string DeviceRoot { get; }

    private string DaxDevicesPath => Path.Join(SysfsRoot, "bus", "dax", "devices");

    private string NdDevicesPath => Path.Join(SysfsRoot, "bus", "nd", "devices");

    /// <summary>Scans every region and device; a broken one is reported in <see cref="DaxTopology.Errors"/> and left out.</summary>
    /// <returns>The regions, devices and errors found; empty lists when the kernel has no NVDIMM or device-DAX bus.</returns>
    /// <exception cref="DaxConfigurationException">The sysfs root does not exist or is not a directory (<see cref="DaxConfigurationRule.BadSysfsRoot"/>).</exception>
    public DaxTopology Scan()
    {
        CheckRoot();
        var errors = new List<DaxConfigurationException>();
        var regions = new List<DaxRegion>();
        var memory = new MemoryTopologyReader(SysfsRoot);
        foreach (string name in ListOrReport(NdDevicesPath, "region", errors))
        {
            if (TryRead(Path.Join(NdDevicesPath, name), () => ReadRegion(name, memory), errors) is { } region)
            {
                regions.Add(region);
            }
        }
        var devices = new List<DaxDevice>();
        foreach (string name in ListOrReport(DaxDevicesPath, "dax", errors))
        {
            if (TryRead(Path.Join(DaxDevicesPath, name), () => ReadDevice(name, Path.Join(DaxDevicesPath, name), SysfsRoot, DeviceRoot, regions, memory), errors) is { } device)
            {
                devices.Add(device);
            }
        }
        errors.AddRange(memory.Errors);
        return new DaxTopology(regions.AsReadOnly(), devices.AsReadOnly(), errors.AsReadOnly(), memory.Nodes, memory.Tiers);
    }

    /// <summary>
    /// Every NUMA node the kernel has (<c>devices/system/node/online</c>), with its CPUs, memory,
    /// HMAT figures and tier, whether or not a dax device names it.
    /// </summary>
    /// <returns>The nodes, ordered by id; empty when the tree has no node directory.</returns>
    /// <exception cref="DaxConfigurationException">The sysfs root is bad, or a node list or HMAT figure is malformed.</exception>
    public IReadOnlyList<MemoryNode> GetNodes()
    {
        CheckRoot();
        return new MemoryTopologyReader(SysfsRoot).AllNodes();
    }

    /// <summary>The NVDIMM regions; the first broken one raises its error.</summary>
    /// <returns>The regions, ordered by name.</returns>
    /// <exception cref="DaxConfigurationException">The sysfs root is bad, or a region breaks a rule.</exception>
    public IReadOnlyList<DaxRegion> GetRegions()
    {
        CheckRoot();
        var memory = new MemoryTopologyReader(SysfsRoot);
        ReadOnlyCollection<DaxRegion> regions = GetRegions(memory);
        memory.ThrowIfBroken();
        return regions;
    }

    private ReadOnlyCollection<DaxRegion> GetRegions(MemoryTopologyReader memory)
        => List(NdDevicesPath, "region").Select(name => Read(Path.Join(NdDevicesPath, name), () => ReadRegion(name, memory))).ToList().AsReadOnly();

    /// <summary>The device-DAX devices; the first broken one raises its error.</summary>
    /// <returns>The devices, ordered by name.</returns>
    /// <exception cref="DaxConfigurationException">The sysfs root is bad, or a device or region breaks a rule.</exception>
    public IReadOnlyList<DaxDevice> GetDevices()
    {
        CheckRoot();
        var memory = new MemoryTopologyReader(SysfsRoot);
        IReadOnlyList<DaxRegion> regions = GetRegions(memory);
        ReadOnlyCollection<DaxDevice> devices = List(DaxDevicesPath, "dax")
            .Select(name => Read(Path.Join(DaxDevicesPath, name), () => ReadDevice(name, Path.Join(DaxDevicesPath, name), SysfsRoot, DeviceRoot, regions, memory)))
            .ToList().AsReadOnly();
        memory.ThrowIfBroken(); // a broken tier list or block size raises its error here, as Scan reports it
        return devices;
    }

    /// <summary>One device by name (<c>dax0.0</c>).</summary>
    /// <param name="name">The device's name.</param>
    /// <returns>The device.</returns>
    /// <exception cref="DaxConfigurationException">No such device (<see cref="DaxConfigurationRule.NoSuchDevice"/>), or it breaks a rule.
    /// A broken tier list or <c>block_size_bytes</c> is not raised here: the device then has no tier or unknown memory blocks.</exception>
    public DaxDevice GetDevice(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        CheckRoot();
        string path = Path.Join(DaxDevicesPath, name);
        if (!Sysfs.IsKernelName(name, "dax") || !Directory.Exists(path))
        {
            throw new DaxConfigurationException(path, DaxConfigurationRule.NoSuchDevice, $"there is no device-DAX device '{name}' (names are daxX.Y).");
        }
        var memory = new MemoryTopologyReader(SysfsRoot);
        IReadOnlyList<DaxRegion> regions = GetRegions(memory);
        // A broken system-wide file (the tier list, block_size_bytes) leaves this device without a
        // tier or memory blocks rather than failing it: opening a device to map it must not depend on them.
        return Read(path, () => ReadDevice(name, path, SysfsRoot, DeviceRoot, regions, memory));
    }

    /// <summary>
    /// Identifies a character device as device-DAX the way daxctl does: the link
    /// <c>dev/char/MAJ:MIN/subsystem</c> must end in <c>dax</c>.
    /// </summary>
    /// <param name="major">The major number.</param>
    /// <param name="minor">The minor number.</param>
    /// <returns>The device.</returns>
    /// <exception cref="DaxConfigurationException">The character device is unknown or not device-DAX (<see cref="DaxConfigurationRule.NotDeviceDax"/>).</exception>
    public DaxDevice IdentifyCharDevice(uint major, uint minor)
    {
        CheckRoot();
        string charPath = Path.Join(SysfsRoot, "dev", "char", string.Create(CultureInfo.InvariantCulture, $"{major}:{minor}"));
        string subsystemPath = Path.Join(charPath, "subsystem");
        string? subsystem = SysfsReader.LinkName(subsystemPath);
        if (subsystem is null)
        {
            throw new DaxConfigurationException(subsystemPath, DaxConfigurationRule.NotDeviceDax,
                string.Create(CultureInfo.InvariantCulture, $"character device {major}:{minor} is not known to sysfs."));
        }
        if (subsystem != "dax")
        {
            throw new DaxConfigurationException(subsystemPath, DaxConfigurationRule.NotDeviceDax,
                string.Create(CultureInfo.InvariantCulture, $"character device {major}:{minor} belongs to subsystem '{subsystem}', not 'dax'; only device-DAX devices can be opened."));
        }
        string name = Path.GetFileName(SysfsReader.ResolvePath(charPath));
        return GetDevice(name);
    }

    /// <summary>Opens a device node (<c>/dev/dax0.0</c>): it must be a character device that sysfs identifies as device-DAX.</summary>
    /// <param name="devicePath">The device node.</param>
    /// <returns>The device.</returns>
    /// <exception cref="DaxConfigurationException">The path is not a character device, or not a device-DAX one.</exception>
    /// <exception cref="PmemException">stat failed (for example ENOENT).</exception>
    public unsafe DaxDevice OpenCharDevice(string devicePath)
    {
        PathValidation.Validate(devicePath, nameof(devicePath));
        Libc.Stat st;
        SyscallError.Check(Libc.StatPath(devicePath, &st), "stat", devicePath);
        if ((st.st_mode & Libc.S_IFMT) != Libc.S_IFCHR)
        {
            throw new DaxConfigurationException(devicePath, DaxConfigurationRule.NotDeviceDax,
                "is not a character device; emulated devices open with DaxDevice.OpenEmulated.");
        }
        return IdentifyCharDevice(Libc.Major(st.st_rdev), Libc.Minor(st.st_rdev));
    }

    private void CheckRoot()
    {
        if (Directory.Exists(SysfsRoot))
        {
            return;
        }
        string problem = File.Exists(SysfsRoot) ? "is a file, not a directory" : "does not exist";
        throw new DaxConfigurationException(SysfsRoot, DaxConfigurationRule.BadSysfsRoot,
            $"the sysfs root {problem}; a DaxBus reads a directory laid out like /sys (bus/dax/devices, bus/nd/devices).");
    }

    private DaxRegion ReadRegion(string name, MemoryTopologyReader memory)
    {
        DaxRegion region = DaxRegion.FromAttributes(NdRegionReader.Read(SysfsRoot, name));
        region.Source = memory.RegionSource(region.ResolvedPath, region.Id);
        region.TargetMemoryNode = memory.Node(region.TargetNode);
        memory.Node(region.NumaNode);
        return region;
    }

    private static List<string> List(string directory, string prefix)
    {
        try
        {
            return Sysfs.ListKernelNames(directory, prefix);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DaxConfigurationException(directory, DaxConfigurationRule.MissingAttribute, $"the directory cannot be listed ({e.Message}).");
        }
    }

    private static List<string> ListOrReport(string directory, string prefix, List<DaxConfigurationException> errors)
    {
        try
        {
            return List(directory, prefix);
        }
        catch (DaxConfigurationException e)
        {
            errors.Add(e);
            return [];
        }
    }

    // Reading a device or region: a file that vanishes or cannot be read mid-scan (hot unplug,
    // permissions) is a typed error naming the directory, like every rule the tree breaks.
    private static T Read<T>(string path, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (IOException e) when (e is not PmemException)
        {
            throw new DaxConfigurationException(path, DaxConfigurationRule.MissingAttribute, $"cannot be read ({e.Message}).");
        }
        catch (UnauthorizedAccessException e)
        {
            throw new DaxConfigurationException(path, DaxConfigurationRule.MissingAttribute, $"cannot be read ({e.Message}).");
        }
    }

    private static T? TryRead<T>(string path, Func<T> read, List<DaxConfigurationException> errors) where T : class
    {
        try
        {
            return Read(path, read);
        }
        catch (DaxConfigurationException e)
        {
            errors.Add(e);
            return null;
        }
    }

    /// <summary>Reads <c>bus/dax/devices/NAME</c>; every number is validated and nothing is built from a tree that breaks a rule.</summary>
    private static DaxDevice ReadDevice(string name, string sysfsPath, string sysfsRoot, string devRoot, IReadOnlyList<DaxRegion> regions,
        MemoryTopologyReader memory)
    {
        string resolved = SysfsReader.ResolvePath(sysfsPath);
        long size = SysfsReader.ReadSize(Path.Join(sysfsPath, "size"));
        string alignPath = Path.Join(sysfsPath, "align");
        PageSize align = SysfsReader.ParseAlign(alignPath, SysfsReader.ReadUInt64(alignPath));
        if (!RangeValidator.IsAligned(size, align))
        {
            throw new DaxConfigurationException(Path.Join(sysfsPath, "size"), DaxConfigurationRule.Unaligned,
                string.Create(CultureInfo.InvariantCulture, $"size {size} is not a multiple of the alignment {(long)align}."));
        }

        (uint? major, uint? minor) = ReadDev(Path.Join(sysfsPath, "dev"));
        IReadOnlyList<DaxDeviceRange> mappings = ReadMappings(sysfsPath, size, align);

        DaxRegion? region = null;
        foreach (DaxRegion candidate in regions)
        {
            if (resolved.StartsWith(candidate.ResolvedPath + "/", StringComparison.Ordinal))
            {
                region = candidate;
                break;
            }
        }

        string driver = SysfsReader.LinkName(Path.Join(sysfsPath, "driver")) ?? "";
        DaxDeviceMode deviceMode = driver switch
        {
            "device_dax" => DaxDeviceMode.DeviceDax,
            "kmem" => DaxDeviceMode.SystemRam,
            "" => DaxDeviceMode.Unbound,
            _ => DaxDeviceMode.Other,
        };
        string mode = deviceMode switch
        {
            DaxDeviceMode.DeviceDax => "devdax",
            DaxDeviceMode.SystemRam => "system-ram",
            DaxDeviceMode.Unbound => "unbound",
            _ => driver,
        };
        int? targetNode = SysfsReader.TryReadNode(Path.Join(sysfsPath, "target_node"));
        int? numaNode = SysfsReader.TryReadNode(Path.Join(sysfsPath, "numa_node"));
        memory.Node(numaNode);

        // The dax_region attributes hang off the device's parent (the nd "dax" personality or the
        // hmem platform device), as daxctl reads them.
        string regionAlignPath = Path.Join(Path.GetDirectoryName(resolved) ?? resolved, "dax_region", "align");
        ulong? regionAlign = SysfsReader.TryReadUInt64(regionAlignPath);
        if (regionAlign is ulong ra && (ra == 0 || ra > long.MaxValue || !System.Numerics.BitOperations.IsPow2(ra)))
        {
            throw new DaxConfigurationException(regionAlignPath, DaxConfigurationRule.NotAPowerOfTwo,
                string.Create(CultureInfo.InvariantCulture, $"region alignment {ra} is not a power of two."));
        }

        return new DaxDevice(name, Path.Join(devRoot, name), size, align, MappingBacking.DeviceDax,
            region?.PersistenceDomain ?? DaxPersistence.Unknown, align, file: null)
        {
            SysfsPath = sysfsPath,
            SysfsRoot = sysfsRoot,
            TargetNode = targetNode,
            NumaNode = numaNode,
            TargetMemoryNode = memory.Node(targetNode),
            Source = memory.DeviceSource(resolved, region),
            DeviceMode = deviceMode,
            MemoryBlockSize = memory.BlockSize(),
            MemoryBlocks = memory.Blocks(mappings, deviceMode),
            Ranges = mappings,
            Resource = SysfsReader.TryReadUInt64(Path.Join(sysfsPath, "resource")),
            RegionAlign = (long?)regionAlign,
            Region = region,
            Major = major,
            Minor = minor,
            Mode = mode,
        };
    }

    private static (uint? Major, uint? Minor) ReadDev(string path)
    {
        string? text = SysfsReader.TryReadText(path);
        if (text is null)
        {
            return (null, null);
        }
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0
            || !uint.TryParse(text.AsSpan(0, colon), NumberStyles.None, CultureInfo.InvariantCulture, out uint major)
            || !uint.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out uint minor))
        {
            throw new DaxConfigurationException(path, DaxConfigurationRule.NotANumber, $"'{text}' is not MAJOR:MINOR.");
        }
        return (major, minor);
    }

    /// <summary>
    /// Reads and validates <c>mapping*/{start,end,page_offset}</c>: each range aligned, no two
    /// overlapping physically or in device offsets, contiguous in device offsets from 0, and
    /// adding up to the device size. Root-only files that cannot be read leave the list empty.
    /// </summary>
    internal static IReadOnlyList<DaxDeviceRange> ReadMappings(string sysfsPath, long size, PageSize align)
    {
        var list = new List<DaxDeviceRange>();
        IEnumerable<string> directories;
        try
        {
            directories = Directory.EnumerateDirectories(sysfsPath, "mapping*").ToList();
        }
        catch (UnauthorizedAccessException)
        {
            return [];
        }
        catch (IOException e)
        {
            throw new DaxConfigurationException(sysfsPath, DaxConfigurationRule.MissingAttribute, $"the device directory cannot be listed ({e.Message}).");
        }
        foreach (string directory in directories)
        {
            string dirName = Path.GetFileName(directory);
            if (!int.TryParse(dirName.AsSpan("mapping".Length), NumberStyles.None, CultureInfo.InvariantCulture, out int index))
            {
                continue;
            }
            string startPath = Path.Join(directory, "start");
            string endPath = Path.Join(directory, "end");
            string offsetPath = Path.Join(directory, "page_offset");
            ulong? start = SysfsReader.TryReadUInt64(startPath);
            ulong? end = SysfsReader.TryReadUInt64(endPath);
            ulong? pageOffset = SysfsReader.TryReadUInt64(offsetPath);
            if (start is null && end is null && pageOffset is null)
            {
                // Root-only (0400) on the real kernel: never depend on them.
                return [];
            }
            if (start is null || end is null || pageOffset is null)
            {
                string missing = start is null ? startPath : end is null ? endPath : offsetPath;
                throw new DaxConfigurationException(missing, DaxConfigurationRule.MissingAttribute, "a mapping range lacks start, end or page_offset.");
            }
            if (end.Value < start.Value || end.Value == ulong.MaxValue || end.Value - start.Value + 1 > long.MaxValue
                || pageOffset.Value > (ulong)long.MaxValue / 4096)
            {
                throw new DaxConfigurationException(endPath, DaxConfigurationRule.InvalidRange,
                    string.Create(CultureInfo.InvariantCulture, $"range [0x{start:x}, 0x{end:x}] at page offset {pageOffset} is empty or overflows."));
            }
            var mapping = new DaxDeviceRange(index, start.Value, end.Value, pageOffset.Value);
            if ((start.Value & ((ulong)align - 1)) != 0 || !RangeValidator.IsAligned(mapping.Length, align)
                || !RangeValidator.IsAligned(mapping.DeviceOffset, align))
            {
                throw new DaxConfigurationException(startPath, DaxConfigurationRule.Unaligned,
                    $"{mapping} is not aligned to {align.ToDisplayString()}.");
            }
            list.Add(mapping);
        }
        list.Sort((a, b) => a.PageOffset.CompareTo(b.PageOffset));

        for (int i = 0; i < list.Count; i++)
        {
            for (int j = i + 1; j < list.Count; j++)
            {
                if (list[i].Start <= list[j].End && list[j].Start <= list[i].End)
                {
                    throw new DaxConfigurationException(Path.Join(sysfsPath, $"mapping{list[j].Index}", "start"),
                        DaxConfigurationRule.RangesOverlap, $"{list[j]} overlaps {list[i]} physically.");
                }
            }
        }
        long expected = 0;
        foreach (DaxDeviceRange m in list)
        {
            string offsetPath = Path.Join(sysfsPath, $"mapping{m.Index}", "page_offset");
            if (m.DeviceOffset < expected)
            {
                throw new DaxConfigurationException(offsetPath, DaxConfigurationRule.RangesOverlap,
                    string.Create(CultureInfo.InvariantCulture, $"{m} overlaps the previous range in device offsets (next free offset 0x{expected:x})."));
            }
            if (m.DeviceOffset > expected)
            {
                throw new DaxConfigurationException(offsetPath, DaxConfigurationRule.RangesDoNotAddUp,
                    string.Create(CultureInfo.InvariantCulture, $"{m} leaves a hole in device offsets at 0x{expected:x}."));
            }
            if (m.Length > long.MaxValue - expected)
            {
                throw new DaxConfigurationException(Path.Join(sysfsPath, $"mapping{m.Index}", "end"), DaxConfigurationRule.InvalidRange,
                    string.Create(CultureInfo.InvariantCulture, $"{m} makes the ranges add up to more than 2^63 bytes."));
            }
            expected += m.Length;
        }
        if (list.Count > 0 && expected != size)
        {
            throw new DaxConfigurationException(Path.Join(sysfsPath, "size"), DaxConfigurationRule.RangesDoNotAddUp,
                string.Create(CultureInfo.InvariantCulture, $"the mapping ranges add up to {expected} bytes but size is {size}."));
        }
        return list.AsReadOnly();
    }
}
