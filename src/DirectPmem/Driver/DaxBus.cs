using System.Globalization;
using DirectPmem.Interop;

namespace DirectPmem.Driver;

/// <summary>
/// The result of one scan of a sysfs tree: the regions and devices that passed every rule, and
/// one typed error for each device or region that did not (it is left out, never half built).
/// </summary>
/// <param name="Regions">The NVDIMM regions, ordered by name.</param>
/// <param name="Devices">The device-DAX devices, ordered by name.</param>
/// <param name="Errors">The devices and regions that broke a rule.</param>
public sealed record DaxTopology(
    IReadOnlyList<DaxRegion> Regions,
    IReadOnlyList<DaxDevice> Devices,
    IReadOnlyList<DaxConfigurationException> Errors);

/// <summary>
/// Discovers device-DAX devices (<c>bus/dax/devices</c>) and NVDIMM regions (<c>bus/nd/devices</c>)
/// under a sysfs root: <c>/sys</c> by default, or a fixture tree. The user-space twin of the
/// kernel's <c>drivers/dax/bus.c</c>: every size, alignment and range is validated before a
/// <see cref="DaxDevice"/> is built.
/// </summary>
public sealed class DaxBus
{
    /// <summary>The bus of the running kernel: sysfs at <c>/sys</c>, device nodes in <c>/dev</c>.</summary>
    public static DaxBus Default { get; } = new("/sys", "/dev");

    /// <summary>Creates a bus over a sysfs tree.</summary>
    /// <param name="sysfsRoot">The directory that plays <c>/sys</c>.</param>
    /// <param name="deviceRoot">The directory that holds the device nodes (<c>/dev</c>).</param>
    public DaxBus(string sysfsRoot, string deviceRoot = "/dev")
    {
        ArgumentException.ThrowIfNullOrEmpty(sysfsRoot);
        ArgumentException.ThrowIfNullOrEmpty(deviceRoot);
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
    /// <returns>The regions, devices and errors found.</returns>
    public DaxTopology Scan()
    {
        var errors = new List<DaxConfigurationException>();
        var regions = new List<DaxRegion>();
        foreach (string name in ListNames(NdDevicesPath, "region"))
        {
            try
            {
                regions.Add(DaxRegion.Read(name, Path.Join(NdDevicesPath, name)));
            }
            catch (DaxConfigurationException e)
            {
                errors.Add(e);
            }
        }
        var devices = new List<DaxDevice>();
        foreach (string name in ListNames(DaxDevicesPath, "dax"))
        {
            try
            {
                devices.Add(DaxDevice.ReadSysfs(name, Path.Join(DaxDevicesPath, name), DeviceRoot, regions));
            }
            catch (DaxConfigurationException e)
            {
                errors.Add(e);
            }
        }
        return new DaxTopology(regions.AsReadOnly(), devices.AsReadOnly(), errors.AsReadOnly());
    }

    /// <summary>The NVDIMM regions; the first broken one raises its error.</summary>
    /// <returns>The regions, ordered by name.</returns>
    /// <exception cref="DaxConfigurationException">A region breaks a rule.</exception>
    public IReadOnlyList<DaxRegion> GetRegions()
        => ListNames(NdDevicesPath, "region").Select(name => DaxRegion.Read(name, Path.Join(NdDevicesPath, name))).ToList().AsReadOnly();

    /// <summary>The device-DAX devices; the first broken one raises its error.</summary>
    /// <returns>The devices, ordered by name.</returns>
    /// <exception cref="DaxConfigurationException">A device or region breaks a rule.</exception>
    public IReadOnlyList<DaxDevice> GetDevices()
    {
        IReadOnlyList<DaxRegion> regions = GetRegions();
        return ListNames(DaxDevicesPath, "dax")
            .Select(name => DaxDevice.ReadSysfs(name, Path.Join(DaxDevicesPath, name), DeviceRoot, regions)).ToList().AsReadOnly();
    }

    /// <summary>One device by name (<c>dax0.0</c>).</summary>
    /// <param name="name">The device's name.</param>
    /// <returns>The device.</returns>
    /// <exception cref="DaxConfigurationException">No such device (<see cref="DaxConfigurationRule.NoSuchDevice"/>), or it breaks a rule.</exception>
    public DaxDevice GetDevice(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        string path = Path.Join(DaxDevicesPath, name);
        if (!IsKernelName(name, "dax") || !Directory.Exists(path))
        {
            throw new DaxConfigurationException(path, DaxConfigurationRule.NoSuchDevice, $"there is no device-DAX device '{name}'.");
        }
        return DaxDevice.ReadSysfs(name, path, DeviceRoot, GetRegions());
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
        ArgumentException.ThrowIfNullOrEmpty(devicePath);
        Libc.Stat st;
        SyscallError.Check(Libc.StatPath(devicePath, &st), "stat", devicePath);
        if ((st.st_mode & Libc.S_IFMT) != Libc.S_IFCHR)
        {
            throw new DaxConfigurationException(devicePath, DaxConfigurationRule.NotDeviceDax,
                "is not a character device; emulated devices open with DaxDevice.OpenEmulated.");
        }
        return IdentifyCharDevice(Libc.Major(st.st_rdev), Libc.Minor(st.st_rdev));
    }

    // regionN, or daxX.Y: the names the kernel gives; anything else on the bus is not ours.
    private static bool IsKernelName(string name, string prefix)
    {
        if (!name.StartsWith(prefix, StringComparison.Ordinal) || name.Length == prefix.Length)
        {
            return false;
        }
        ReadOnlySpan<char> rest = name.AsSpan(prefix.Length);
        if (prefix == "region")
        {
            return int.TryParse(rest, System.Globalization.NumberStyles.None, CultureInfo.InvariantCulture, out _);
        }
        int dot = rest.IndexOf('.');
        return dot > 0
            && int.TryParse(rest[..dot], System.Globalization.NumberStyles.None, CultureInfo.InvariantCulture, out _)
            && int.TryParse(rest[(dot + 1)..], System.Globalization.NumberStyles.None, CultureInfo.InvariantCulture, out _);
    }

    private static List<string> ListNames(string directory, string prefix)
    {
        if (!Directory.Exists(directory))
        {
            return [];
        }
        var names = new List<string>();
        foreach (string entry in Directory.EnumerateFileSystemEntries(directory))
        {
            string name = Path.GetFileName(entry);
            if (IsKernelName(name, prefix))
            {
                names.Add(name);
            }
        }
        names.Sort(StringComparer.Ordinal);
        return names;
    }
}
