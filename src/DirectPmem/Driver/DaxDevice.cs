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
/// Disposing the device ends its use: <see cref="Map"/>, <see cref="MapRaw"/> and everything
/// handed out that still works through the device (a <see cref="DaxRangeAllocator"/>) then throw
/// <see cref="ObjectDisposedException"/> naming it. Mappings already made stay valid until they are
/// disposed themselves; disposing an emulated device also closes its file.
/// </remarks>
public sealed partial class DaxDevice : IDisposable
{
    private readonly PmemFile? _file;
    // How this device becomes a map source: the device node (real backend) or a window of the
    // emulated device's file (emulated backend). Every map goes through it and MapRequest.Create.
    private readonly MapSource _source;
    private volatile bool _disposed;

    internal DaxDevice(string name, string devicePath, long size, PageSize align, MappingBacking backing, DaxPersistence persistence,
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
            ? new DeviceNodeSource(devicePath, size, align, OpenNode, ResolveDeepFlush, GetBadRanges)
            : new EmulatedDeviceSource(file.Source, align, size);
        Ranges = [];
    }

    /// <summary>The device's name: <c>daxX.Y</c>, or the file name of an emulated device.</summary>
    public string Name { get; }

    /// <summary>The path that is opened to map the device: <c>/dev/daxX.Y</c>, the emulated device's file, or <c>memfd:NAME</c>.</summary>
    public string DevicePath { get; }

    /// <summary>The device's directory under <c>bus/dax/devices</c>, or null for an emulated device.</summary>
    public string? SysfsPath { get; internal init; }

    /// <summary>The size in bytes (from sysfs <c>size</c>, or the emulated device's descriptor).</summary>
    public long Size { get; }

    /// <summary>The alignment and fault size (<c>align</c>): every mapping offset and length is a multiple of it.</summary>
    public PageSize Align { get; }

    /// <summary>The NUMA node the memory would join as system RAM (<c>target_node</c>; -1 for none), when exposed.</summary>
    public int? TargetNode { get; internal init; }

    /// <summary>The NUMA node of the CPUs closest to the device (<c>numa_node</c>; -1 for none), when exposed.</summary>
    public int? NumaNode { get; internal init; }

    /// <summary>The physical ranges (sysfs <c>mapping*</c>, the kernel's <c>dev_dax_range</c>), in device-offset order; empty when the kernel does not expose them or they are not readable.</summary>
    public IReadOnlyList<DaxDeviceRange> Ranges { get; internal init; }

    /// <summary>The physical start address (<c>resource</c>, root-only), or null when not readable.</summary>
    public ulong? Resource { get; internal init; }

    /// <summary>The alignment of the device's dax region (<c>dax_region/align</c>, root-only on some kernels), or null.</summary>
    public long? RegionAlign { get; internal init; }

    /// <summary>The NVDIMM region the device belongs to, where sysfs says so; null for CXL/soft-reserved memory and emulated devices.</summary>
    public DaxRegion? Region { get; internal init; }

    /// <summary>The sysfs root the device was discovered under (its region's deep flush is found there).</summary>
    internal string SysfsRoot { get; init; } = "/sys";

    /// <summary>The character device's major number (from <c>dev</c>), or null for an emulated device.</summary>
    public uint? Major { get; internal init; }

    /// <summary>The character device's minor number (from <c>dev</c>), or null for an emulated device.</summary>
    public uint? Minor { get; internal init; }

    /// <summary><c>devdax</c> when bound to device_dax (or emulated), <c>system-ram</c> when bound to kmem, otherwise the driver's name or <c>unbound</c>.</summary>
    public string Mode { get; internal init; } = "devdax";

    /// <summary>The mode as a type: device-DAX (<c>device_dax</c>), system RAM (<c>kmem</c>), unbound, or another driver; <see cref="DaxDeviceMode.DeviceDax"/> for an emulated device.</summary>
    public DaxDeviceMode DeviceMode { get; internal init; } = DaxDeviceMode.DeviceDax;

    /// <summary>Where the memory comes from (NVDIMM, soft-reserved, a CXL region), or null for an emulated device.</summary>
    public DaxMemorySource? Source { get; internal init; }

    /// <summary>Persistent or volatile, from <see cref="Source"/>; <see cref="DaxMemoryPersistence.Unknown"/> for an emulated device.</summary>
    public DaxMemoryPersistence MemoryPersistence => Source?.Persistence ?? DaxMemoryPersistence.Unknown;

    /// <summary>The node the memory joins as system RAM (<see cref="TargetNode"/>) with its HMAT figures and memory tier; null when the device names none.</summary>
    public MemoryNode? TargetMemoryNode { get; internal init; }

    /// <summary>
    /// The system RAM memory blocks inside the device's physical ranges (<c>devices/system/memory</c>,
    /// found as daxctl finds them): online or offline in <see cref="DaxDeviceMode.SystemRam"/> mode,
    /// none in device-DAX mode; null when the ranges (root-only) or the block size are unknown (a
    /// broken <c>block_size_bytes</c> is one error in <see cref="DaxTopology.Errors"/>).
    /// </summary>
    public IReadOnlyList<MemoryBlock>? MemoryBlocks { get; internal init; }

    /// <summary>The system's memory block size (<c>block_size_bytes</c>), or null when not exposed.</summary>
    public long? MemoryBlockSize { get; internal init; }

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
    /// which may not be smaller) and lie within <see cref="Size"/>. On a device that holds a
    /// <see cref="DaxRangeAllocator"/> label table the label area is never mapped: the default
    /// request maps the allocatable part (from <see cref="DaxRangeAllocator.LabelAreaLength"/>,
    /// which is then the mapping's <see cref="DaxMapping.SourceOffset"/>), and a request that
    /// reaches into the label area is refused; <see cref="MapRaw"/> maps it on purpose.
    /// </summary>
    /// <param name="options">The range, page size and flags; the whole device (or its allocatable part) when null.</param>
    /// <returns>The mapping: shared, MADV_DONTFORK, at an address aligned to its page size.</returns>
    /// <exception cref="ArgumentException">The offset or length is misaligned, or the page size is smaller than <see cref="Align"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The range is empty or ends past <see cref="Size"/>.</exception>
    /// <exception cref="DaxLabelException">The range reaches into the label area of a device that holds a label table (<see cref="DaxLabelRule.LabelAreaProtected"/>).</exception>
    /// <exception cref="PmemCapabilityException"><see cref="DaxMappingOptions.RequirePageSize"/> is set and the device faults in smaller pages.</exception>
    /// <exception cref="PmemException">open or mmap failed.</exception>
    /// <exception cref="ObjectDisposedException">The device has been disposed.</exception>
    public DaxMapping Map(DaxMappingOptions? options = null) => MapOutsideLabels(options ?? DaxMappingOptions.Default);

    /// <summary>
    /// Maps the whole device or an aligned sub-range like <see cref="Map"/>, including the label
    /// area of a <see cref="DaxRangeAllocator"/>: stores there can destroy every range's label.
    /// For tools that inspect or wipe a device.
    /// </summary>
    /// <param name="options">The range, page size and flags; the whole device when null.</param>
    /// <returns>The mapping.</returns>
    /// <exception cref="ArgumentException">The offset or length is misaligned, or the page size is smaller than <see cref="Align"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The range is empty or ends past <see cref="Size"/>.</exception>
    /// <exception cref="PmemCapabilityException"><see cref="DaxMappingOptions.RequirePageSize"/> is set and the device faults in smaller pages.</exception>
    /// <exception cref="PmemException">open or mmap failed.</exception>
    /// <exception cref="ObjectDisposedException">The device has been disposed.</exception>
    public DaxMapping MapRaw(DaxMappingOptions? options = null) => MapRange(0, Size, Align, options ?? DaxMappingOptions.Default, "'" + DevicePath + "'");

    /// <summary>
    /// Ends the device's use: later maps, and every method of an allocator opened on it, throw
    /// <see cref="ObjectDisposedException"/>. Closes an emulated device's file. Mappings made from
    /// the device or its allocators stay valid until they are disposed themselves. Idempotent.
    /// </summary>
    public void Dispose()
    {
        _disposed = true;
        _file?.Dispose();
    }

    /// <summary>Throws <see cref="ObjectDisposedException"/> naming the device if it was disposed.</summary>
    internal void ThrowIfDisposed()
    {
        if (_disposed)
        {
            throw new ObjectDisposedException(nameof(DaxDevice), $"the device '{DevicePath}' has been disposed; reopen it to map it or to use its DaxRangeAllocator.");
        }
    }

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Name} ({DevicePath}): {Size} bytes, align {Align.ToDisplayString()}{(IsEmulated ? ", emulated on " + Backing : "")}, persistence {Persistence}");

    /// <summary>What mmap will be asked for, after every rule is checked: device offset, length, page size and flags.</summary>
    internal readonly record struct MapPlan(long DeviceOffset, long Length, PageSize PageSize, int ExtraFlags, MappingBacking Backing);

    /// <summary>Builds and validates the request <see cref="MapRange"/> would map, without mapping it.</summary>
    internal MapPlan Plan(long baseOffset, long limit, PageSize minimum, DaxMappingOptions options, string what)
    {
        ThrowIfDisposed();
        MapRequest request = MapRequest.Create(_source, options, baseOffset, limit, minimum, what);
        return new MapPlan(request.SourceOffset, request.Length, request.PageSize, request.Source.MapFlags, request.Source.Backing);
    }

    /// <summary>
    /// Maps <paramref name="options"/>' range of the window <c>[baseOffset, baseOffset + limit)</c>
    /// of the device, whose pages are at least <paramref name="minimum"/> (the whole device, or a
    /// range of a <see cref="DaxRangeAllocator"/>). The one entry point of both backends.
    /// </summary>
    internal DaxMapping MapRange(long baseOffset, long limit, PageSize minimum, DaxMappingOptions options, string what)
    {
        ThrowIfDisposed();
        return MappingFactory.Map(_source, options, baseOffset, limit, minimum, what);
    }

    /// <summary>The deep-flush control of the region behind the device, as its mappings get it (resolved once).</summary>
    internal DeepFlushControl? RegionDeepFlush => _source.RegionDeepFlush;

    // The region behind dev/char/MAJ:MIN (the node's number is checked against it at every open).
    private DeepFlushControl? ResolveDeepFlush()
        => Major is uint major && Minor is uint minor ? NdRegionLocator.ForDevice(SysfsRoot, block: false, major, minor) : null;

    private void ThrowIfNotDeviceDax(DaxDeviceMode mode)
    {
        if (mode == DaxDeviceMode.SystemRam)
        {
            throw new DaxConfigurationException(SysfsPath ?? DevicePath, DaxConfigurationRule.NotInDeviceDaxMode,
                $"{Name} is in system-ram mode (bound to kmem): its memory belongs to the kernel and {DevicePath} cannot be opened. "
                + $"Place memory on its node (NodeMemory.Map with node {TargetNode?.ToString(CultureInfo.InvariantCulture) ?? "?"}), or reconfigure it to devdax (dpmem reconfigure {Name} --mode devdax).");
        }
        if (mode == DaxDeviceMode.Unbound)
        {
            throw new DaxConfigurationException(SysfsPath ?? DevicePath, DaxConfigurationRule.NotInDeviceDaxMode,
                $"{Name} is bound to no driver, so {DevicePath} cannot be opened; bind it to device_dax (dpmem reconfigure {Name} --mode devdax).");
        }
    }

    internal unsafe SafeFileDescriptor OpenNode(bool readOnly)
    {
        // A snapshot in system-ram mode is refused at once; an unbound one (fixture trees often have no driver
        // links) only when its node is missing.
        if (DeviceMode == DaxDeviceMode.SystemRam)
        {
            ThrowIfNotDeviceDax(DeviceMode);
        }
        int flags = (readOnly ? Libc.O_RDONLY : Libc.O_RDWR) | Libc.O_CLOEXEC;
        int fd = Libc.Open(DevicePath, flags, 0);
        if (fd < 0)
        {
            int errno = SyscallError.LastErrno;
            if (errno is Errno.ENOENT or Errno.ENXIO or Errno.ENODEV && SysfsPath is not null)
            {
                // When device_dax lets go of the device its cdev goes (open gives ENXIO; the node itself stays
                // until the device is deleted): say which mode it is in now.
                ThrowIfNotDeviceDax(SysfsReader.LinkName(Path.Join(SysfsPath, "driver")) switch
                {
                    "kmem" => DaxDeviceMode.SystemRam,
                    null => DaxDeviceMode.Unbound,
                    _ => DaxDeviceMode.DeviceDax,
                });
            }
            SyscallError.Throw(errno, readOnly ? "open(O_RDONLY)" : "open(O_RDWR)", DevicePath);
        }
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

}
