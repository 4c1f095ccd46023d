using System.Globalization;
using DirectPmem.Geometry;
using DirectPmem.Internal;
using DirectPmem.Interop;
using DirectPmem.Mapping;
using DirectPmem.Persistence;

namespace DirectPmem.Driver;

/// <summary>
/// A device-DAX device: a real <c>/dev/daxX.Y</c> discovered through <see cref="DaxBus"/>, or an
/// emulated one on a file, a hugetlbfs file or a memfd. Either way it maps with the device-DAX
/// rules: offsets and lengths are multiples of <see cref="Align"/>, mappings are shared and never
/// inherited by a fork, and nothing maps past <see cref="Size"/>.
/// </summary>
/// <remarks>
/// mmap of a real device-DAX device does not check the device size: touching a page past the
/// end raises SIGBUS. <see cref="Map"/> checks every range against <see cref="Size"/> (from sysfs,
/// because <c>fstat</c> reports 0 for a character device) before it calls mmap.
/// Disposing an emulated device closes its file; mappings made from it stay valid.
/// </remarks>
public sealed partial class DaxDevice : IDisposable
{
    private readonly PmemFile? _file;
    // How this device becomes a map source: the device node (real backend) or a window of the
    // emulated device's file (emulated backend). Every map goes through it and MapRequest.Create.
    private readonly MapSource _source;

    private DaxDevice(string name, string devicePath, long size, PageSize align, MappingBacking backing, DaxPersistence persistence,
        PageSize faultGranularity, PmemFile? file)
    {
        Name = name;
        DevicePath = devicePath;
        Size = size;
        Align = align;
        Backing = backing;
        Persistence = persistence;
        FaultGranularity = faultGranularity;
        _file = file;
        _source = file is null
            ? new DeviceNodeSource(devicePath, size, align, OpenNode)
            : new EmulatedDeviceSource(file.Source, align, size);
        Mappings = [];
    }

    /// <summary>The device's name: <c>daxX.Y</c>, or the file name of an emulated device.</summary>
    public string Name { get; }

    /// <summary>The path that is opened to map the device: <c>/dev/daxX.Y</c>, the emulated device's file, or <c>memfd:NAME</c>.</summary>
    public string DevicePath { get; }

    /// <summary>The device's directory under <c>bus/dax/devices</c>, or null for an emulated device.</summary>
    public string? SysfsPath { get; private init; }

    /// <summary>The size in bytes (from sysfs <c>size</c>, or the emulated device's descriptor).</summary>
    public long Size { get; }

    /// <summary>The alignment and fault size (<c>align</c>): every mapping offset and length is a multiple of it.</summary>
    public PageSize Align { get; }

    /// <summary>The NUMA node the memory would join as system RAM (<c>target_node</c>; -1 for none), when exposed.</summary>
    public int? TargetNode { get; private init; }

    /// <summary>The NUMA node of the CPUs closest to the device (<c>numa_node</c>; -1 for none), when exposed.</summary>
    public int? NumaNode { get; private init; }

    /// <summary>The physical ranges (<c>mapping*</c>), in device-offset order; empty when the kernel does not expose them or they are not readable.</summary>
    public IReadOnlyList<DaxDeviceMapping> Mappings { get; private init; }

    /// <summary>The physical start address (<c>resource</c>, root-only), or null when not readable.</summary>
    public ulong? Resource { get; private init; }

    /// <summary>The alignment of the device's dax region (<c>dax_region/align</c>, root-only on some kernels), or null.</summary>
    public long? RegionAlign { get; private init; }

    /// <summary>The NVDIMM region the device belongs to, where sysfs says so; null for CXL/soft-reserved memory and emulated devices.</summary>
    public DaxRegion? Region { get; private init; }

    /// <summary>The character device's major number (from <c>dev</c>), or null for an emulated device.</summary>
    public uint? Major { get; private init; }

    /// <summary>The character device's minor number (from <c>dev</c>), or null for an emulated device.</summary>
    public uint? Minor { get; private init; }

    /// <summary><c>devdax</c> when bound to device_dax (or emulated), <c>system-ram</c> when bound to kmem, otherwise the driver's name or <c>unbound</c>.</summary>
    public string Mode { get; private init; } = "devdax";

    /// <summary>Whether the device is emulated on a file or memfd rather than a kernel device-DAX device.</summary>
    public bool IsEmulated => _file is not null;

    /// <summary>What the mappings are made from: <see cref="MappingBacking.DeviceDax"/>, or the emulated device's file kind.</summary>
    public MappingBacking Backing { get; }

    /// <summary>
    /// What really makes data durable: the region's persistence domain for a real device
    /// (<see cref="DaxPersistence.Unknown"/> without a region), page cache or volatile for an emulated one.
    /// </summary>
    public DaxPersistence Persistence { get; }

    /// <summary>
    /// How data in a mapping of this device is made durable when the options force nothing: the
    /// same answer as <see cref="DaxMapping.Granularity"/> of <c>Map()</c> (cache-line on device-DAX
    /// without eADR, byte under eADR; an emulated device's backing decides: page for an ordinary
    /// file, cache-line for a file on a DAX file system, none for memory). The one durability
    /// vocabulary of mappings; <see cref="Persistence"/> is the platform's persistence domain.
    /// </summary>
    public PersistGranularity Granularity => PersistencePlatform.Natural(_source.Durability);

    /// <summary>
    /// The page size the kernel really faults the device in: <see cref="Align"/> for a real
    /// device and an emulated one on hugetlb pages of that size, 4 KiB for one on an ordinary
    /// file or tmpfs (which only enforces the alignment rules).
    /// </summary>
    public PageSize FaultGranularity { get; }

    /// <summary>Opens a device-DAX character device by its <c>/dev</c> path, identified through <c>/sys/dev/char</c> of <see cref="DaxBus.Default"/>.</summary>
    /// <param name="devicePath">For example <c>/dev/dax0.0</c>.</param>
    /// <returns>The device, described from sysfs.</returns>
    /// <exception cref="DaxConfigurationException">The path is not a device-DAX character device, or its sysfs description breaks a rule.</exception>
    public static DaxDevice Open(string devicePath) => DaxBus.Default.OpenCharDevice(devicePath);

    /// <summary>
    /// Maps the whole device or an aligned sub-range. Offsets are device offsets; the offset and
    /// length must be multiples of <see cref="Align"/> (or of <see cref="DaxMappingOptions.PageSize"/>,
    /// which may not be smaller) and lie within <see cref="Size"/>.
    /// </summary>
    /// <param name="options">The range, page size and flags; the whole device when null.</param>
    /// <returns>The mapping: shared, MADV_DONTFORK, at an address aligned to its page size.</returns>
    /// <exception cref="ArgumentException">The offset or length is misaligned, or the page size is smaller than <see cref="Align"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The range is empty or ends past <see cref="Size"/>.</exception>
    /// <exception cref="PmemCapabilityException"><see cref="DaxMappingOptions.RequirePageSize"/> is set and the device faults in smaller pages.</exception>
    /// <exception cref="PmemException">open or mmap failed.</exception>
    public DaxMapping Map(DaxMappingOptions? options = null) => MapRange(0, Size, Align, options ?? DaxMappingOptions.Default, "'" + DevicePath + "'");

    /// <summary>Closes an emulated device's file (mappings made from it stay valid); nothing for a real device.</summary>
    public void Dispose() => _file?.Dispose();

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Name} ({DevicePath}): {Size} bytes, align {Align.ToDisplayString()}{(IsEmulated ? ", emulated on " + Backing : "")}, persistence {Persistence}");

    /// <summary>What mmap will be asked for, after every rule is checked: device offset, length, page size and flags.</summary>
    internal readonly record struct MapPlan(long DeviceOffset, long Length, PageSize PageSize, int ExtraFlags, MappingBacking Backing);

    /// <summary>Builds and validates the request <see cref="MapRange"/> would map, without mapping it.</summary>
    internal MapPlan Plan(long baseOffset, long limit, PageSize minimum, DaxMappingOptions options, string what)
    {
        MapRequest request = MapRequest.Create(_source, options, baseOffset, limit, minimum, what);
        return new MapPlan(request.SourceOffset, request.Length, request.PageSize, request.Source.MapFlags, request.Source.Backing);
    }

    /// <summary>
    /// Maps <paramref name="options"/>' range of the window <c>[baseOffset, baseOffset + limit)</c>
    /// of the device, whose pages are at least <paramref name="minimum"/> (the whole device, or a
    /// range of a <see cref="DaxRangeAllocator"/>). The one entry point of both backends.
    /// </summary>
    internal DaxMapping MapRange(long baseOffset, long limit, PageSize minimum, DaxMappingOptions options, string what)
        => MappingFactory.Map(_source, options, baseOffset, limit, minimum, what);

    private unsafe SafeFileDescriptor OpenNode(bool readOnly)
    {
        int flags = (readOnly ? Libc.O_RDONLY : Libc.O_RDWR) | Libc.O_CLOEXEC;
        int fd = SyscallError.Check(Libc.Open(DevicePath, flags, 0), readOnly ? "open(O_RDONLY)" : "open(O_RDWR)", DevicePath);
        var handle = new SafeFileDescriptor(fd);
        try
        {
            Libc.Stat st;
            SyscallError.Check(Libc.FStat(fd, &st), "fstat", DevicePath);
            if ((st.st_mode & Libc.S_IFMT) != Libc.S_IFCHR)
            {
                throw new DaxConfigurationException(DevicePath, DaxConfigurationRule.NotDeviceDax, "is not a character device.");
            }
            if (Major is uint major && Minor is uint minor && (Libc.Major(st.st_rdev) != major || Libc.Minor(st.st_rdev) != minor))
            {
                throw new DaxConfigurationException(DevicePath, DaxConfigurationRule.NotDeviceDax, string.Create(CultureInfo.InvariantCulture,
                    $"is character device {Libc.Major(st.st_rdev)}:{Libc.Minor(st.st_rdev)}, but sysfs says {Name} is {major}:{minor}."));
            }
            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    // Set while a DaxRangeAllocator owns this instance's label area.
    private int _labelsOwned;

    /// <summary>
    /// Takes exclusive ownership of the label area for one <see cref="DaxRangeAllocator"/>: within
    /// this instance by a flag, across instances and processes by the emulated device's file lock
    /// or, for a real device, by flock(LOCK_EX) on the device node held until the owner is disposed.
    /// </summary>
    internal IDisposable AcquireLabels()
    {
        if (Interlocked.Exchange(ref _labelsOwned, 1) != 0)
        {
            throw new PmemInUseException($"a DaxRangeAllocator is already open on '{DevicePath}'; dispose it first.", null, 0, DevicePath);
        }
        try
        {
            SafeFileDescriptor? node = null;
            if (_file is null)
            {
                node = OpenNode(readOnly: true);
                if (Libc.Flock(node.Fd, Libc.LOCK_EX | Libc.LOCK_NB) != 0)
                {
                    int errno = SyscallError.LastErrno;
                    node.Dispose();
                    throw SyscallError.Create(errno, "flock(LOCK_EX|LOCK_NB)", DevicePath,
                        hint: errno == Errno.EWOULDBLOCK ? "Another DaxRangeAllocator (in this or another process) owns the device's labels." : null);
                }
            }
            return new LabelOwnership(this, node);
        }
        catch
        {
            Volatile.Write(ref _labelsOwned, 0);
            throw;
        }
    }

    private sealed class LabelOwnership(DaxDevice device, SafeFileDescriptor? node) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                node?.Dispose();
                Volatile.Write(ref device._labelsOwned, 0);
            }
        }
    }

    /// <summary>Reads <c>bus/dax/devices/NAME</c>; every number is validated and nothing is built from a tree that breaks a rule.</summary>
    internal static DaxDevice ReadSysfs(string name, string sysfsPath, string devRoot, IReadOnlyList<DaxRegion> regions)
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
        IReadOnlyList<DaxDeviceMapping> mappings = ReadMappings(sysfsPath, size, align);

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
        string mode = driver switch
        {
            "device_dax" => "devdax",
            "kmem" => "system-ram",
            "" => "unbound",
            _ => driver,
        };

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
            TargetNode = SysfsReader.TryReadNode(Path.Join(sysfsPath, "target_node")),
            NumaNode = SysfsReader.TryReadNode(Path.Join(sysfsPath, "numa_node")),
            Mappings = mappings,
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
    internal static IReadOnlyList<DaxDeviceMapping> ReadMappings(string sysfsPath, long size, PageSize align)
    {
        var list = new List<DaxDeviceMapping>();
        IEnumerable<string> directories;
        try
        {
            directories = Directory.EnumerateDirectories(sysfsPath, "mapping*").ToList();
        }
        catch (UnauthorizedAccessException)
        {
            return [];
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
            var mapping = new DaxDeviceMapping(index, start.Value, end.Value, pageOffset.Value);
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
        foreach (DaxDeviceMapping m in list)
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
            expected = checked(expected + m.Length);
        }
        if (list.Count > 0 && expected != size)
        {
            throw new DaxConfigurationException(Path.Join(sysfsPath, "size"), DaxConfigurationRule.RangesDoNotAddUp,
                string.Create(CultureInfo.InvariantCulture, $"the mapping ranges add up to {expected} bytes but size is {size}."));
        }
        return list.AsReadOnly();
    }
}
