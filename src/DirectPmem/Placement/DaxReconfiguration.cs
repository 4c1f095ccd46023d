using System.Globalization;
using System.Text;
using DirectPmem.Driver;
using DirectPmem.Interop;

namespace DirectPmem.Placement;

/// <summary>The zone a system-ram device's memory blocks are onlined to.</summary>
public enum MemoryZone
{
    /// <summary><c>online_movable</c>: only movable pages, so the blocks can be offlined and the device taken back (daxctl's default).</summary>
    Movable,

    /// <summary><c>online_kernel</c>: the Normal zone; the kernel may put pages there it can never move, and then the device cannot be taken back until reboot.</summary>
    Normal,
}

/// <summary>
/// Changes a device between device-DAX and system-ram mode the way <c>daxctl reconfigure-device</c>
/// does, through sysfs alone: unbind the driver, bind <c>kmem</c> or <c>device_dax</c>
/// (<c>/sys/bus/dax/drivers/NAME/new_id</c>, <c>bind</c>, <c>unbind</c>, <c>remove_id</c>), and
/// online or offline the device's memory blocks (<c>/sys/devices/system/memory/memoryN/state</c>).
/// Needs root. Each known trap is a <see cref="DaxReconfigurationException"/> saying what to do.
/// </summary>
public static class DaxReconfiguration
{
    /// <summary>
    /// Hands the device to the kernel as system RAM on its target node: unbinds <c>device_dax</c>,
    /// binds <c>kmem</c> and onlines every memory block in <paramref name="zone"/>.
    /// </summary>
    /// <param name="device">A device from discovery, in devdax mode (or already system-ram: then only its offline blocks are onlined).</param>
    /// <param name="zone">The zone for the blocks; <see cref="MemoryZone.Movable"/> keeps the change reversible.</param>
    /// <returns>The device as sysfs now shows it, in system-ram mode with its blocks online.</returns>
    /// <exception cref="DaxReconfigurationException">Not root, kmem not loaded, the device mapped by a process, its blocks online in another zone already, or a write refused.</exception>
    public static DaxDevice ToSystemRam(DaxDevice device, MemoryZone zone = MemoryZone.Movable)
    {
        ArgumentNullException.ThrowIfNull(device);
        Context c = Begin(device, "kmem");
        if (device.DeviceMode is DaxDeviceMode.DeviceDax)
        {
            ThrowIfMapped(device);
            c.Write(Path.Join(c.Drivers, "device_dax", "unbind"), device.Name);
        }
        else if (device.DeviceMode is not (DaxDeviceMode.Unbound or DaxDeviceMode.SystemRam))
        {
            throw new DaxReconfigurationException(DaxReconfigurationProblem.WrongMode, device.Name,
                $"is bound to '{device.Mode}', neither device_dax nor kmem; unbind it first.");
        }
        if (device.DeviceMode is not DaxDeviceMode.SystemRam)
        {
            Bind(c, "kmem", fallback: "device_dax");
        }
        DaxDevice now = c.Reread();
        if (now.MemoryBlocks is not { Count: > 0 } blocks)
        {
            throw new DaxReconfigurationException(DaxReconfigurationProblem.NoMemoryBlocks, device.Name,
                "is bound to kmem but holds no whole memory block (its ranges are smaller than or not aligned to the block size); reconfigure it back to devdax.");
        }
        string zoneName = zone == MemoryZone.Movable ? "Movable" : "Normal";
        foreach (MemoryBlock block in blocks.Where(b => b.IsOnline))
        {
            // An online block's valid_zones names the one zone it is in.
            if (!block.ValidZones.Contains(zoneName, StringComparer.Ordinal))
            {
                throw new DaxReconfigurationException(DaxReconfigurationProblem.BlocksOnlineInOtherZone, device.Name, string.Concat(
                    string.Create(CultureInfo.InvariantCulture, $"memory{block.Id}"), $" was already onlined in zone '{string.Join(' ', block.ValidZones)}', not {zoneName}: something onlined the blocks first "
                    + $"(auto_online_blocks is '{c.AutoOnline ?? "?"}', or a udev rule). Set {Path.Join(c.Root, "devices", "system", "memory", "auto_online_blocks")} to offline "
                    + "and disable the udev rule before reconfiguring, or ask for that zone."));
            }
        }
        string state = zone == MemoryZone.Movable ? "online_movable" : "online_kernel";
        foreach (MemoryBlock block in blocks.Where(b => !b.IsOnline))
        {
            c.Write(BlockState(c, block), state, "online the memory block (it may lie in a zone that cannot take it: try the other zone)");
        }
        return c.Reread();
    }

    /// <summary>
    /// Takes a system-ram device back from the kernel: offlines its memory blocks, unbinds
    /// <c>kmem</c> and binds <c>device_dax</c>, so <c>/dev/daxX.Y</c> exists again.
    /// </summary>
    /// <param name="device">A device from discovery, in system-ram mode (or unbound).</param>
    /// <returns>The device as sysfs now shows it, in devdax mode.</returns>
    /// <exception cref="DaxReconfigurationException">Not root, device_dax not loaded, or a block the kernel will not offline (EBUSY: the blocks already offlined are onlined again and nothing else changes).</exception>
    public static DaxDevice ToDeviceDax(DaxDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        Context c = Begin(device, "device_dax");
        if (device.DeviceMode is DaxDeviceMode.DeviceDax)
        {
            return c.Reread();
        }
        if (device.DeviceMode is DaxDeviceMode.SystemRam)
        {
            var offlined = new List<(MemoryBlock Block, string Zone)>();
            foreach (MemoryBlock block in device.MemoryBlocks ?? [])
            {
                if (!block.IsOnline)
                {
                    continue;
                }
                int errno = c.TryWrite(BlockState(c, block), "offline");
                if (errno != 0)
                {
                    string restored = Restore(c, offlined);
                    throw new DaxReconfigurationException(DaxReconfigurationProblem.OfflineBusy, device.Name, string.Concat(
                        string.Create(CultureInfo.InvariantCulture, $"the kernel would not offline memory{block.Id}"), $" ({Errno.Name(errno)}; zone {string.Join(' ', block.ValidZones)}): it holds pages the kernel cannot move, "
                        + $"as the Normal zone may. {restored} The device stays in system-ram mode; blocks onlined movable (online_movable) can be given back."),
                        BlockState(c, block), errno);
                }
                offlined.Add((block, block.ValidZones.Contains("Normal", StringComparer.Ordinal) && !block.ValidZones.Contains("Movable", StringComparer.Ordinal) ? "online_kernel" : "online_movable"));
            }
            c.Write(Path.Join(c.Drivers, "kmem", "unbind"), device.Name);
        }
        else if (device.DeviceMode is not DaxDeviceMode.Unbound)
        {
            throw new DaxReconfigurationException(DaxReconfigurationProblem.WrongMode, device.Name,
                $"is bound to '{device.Mode}', neither device_dax nor kmem; unbind it first.");
        }
        // kmem's id entry would take the device again at the next probe.
        c.TryWrite(Path.Join(c.Drivers, "kmem", "remove_id"), device.Name);
        Bind(c, "device_dax", fallback: null);
        return c.Reread();
    }

    private static string BlockState(Context c, MemoryBlock block)
        => Path.Join(c.Root, "devices", "system", "memory", string.Create(CultureInfo.InvariantCulture, $"memory{block.Id}"), "state");

    private static string Restore(Context c, List<(MemoryBlock Block, string Zone)> offlined)
    {
        var failed = new List<long>();
        foreach ((MemoryBlock block, string zone) in offlined)
        {
            if (c.TryWrite(BlockState(c, block), zone) != 0)
            {
                failed.Add(block.Id);
            }
        }
        return failed.Count == 0
            ? string.Create(CultureInfo.InvariantCulture, $"The {offlined.Count} block(s) offlined before it were onlined again.")
            : $"Blocks {string.Join(',', failed)} could not be onlined again and stay offline (online them with 'echo online_movable > .../memoryN/state').";
    }

    // Binds the device to a driver: new_id (the dax bus attaches at once), then bind if that did not take.
    private static void Bind(Context c, string driver, string? fallback)
    {
        string name = c.Device.Name;
        c.TryWrite(Path.Join(c.Drivers, driver, "new_id"), name);
        if (c.DriverNow() != driver)
        {
            c.TryWrite(Path.Join(c.Drivers, driver, "bind"), name);
        }
        string? now = c.DriverNow();
        if (now != driver)
        {
            string back = "";
            if (fallback is not null && now is null)
            {
                back = c.TryWrite(Path.Join(c.Drivers, fallback, "bind"), name) == 0 && c.DriverNow() == fallback
                    ? $" It was bound to {fallback} again."
                    : $" It could not be bound to {fallback} again and is unbound.";
            }
            throw new DaxReconfigurationException(DaxReconfigurationProblem.BindFailed, name,
                $"is bound to '{now ?? "no driver"}' after writing its name to {driver}/new_id and {driver}/bind (dmesg says why).{back}");
        }
    }

    private static Context Begin(DaxDevice device, string driver)
    {
        if (device.SysfsPath is null)
        {
            throw new ArgumentException($"'{device.DevicePath}' is an emulated device; only a device discovered in sysfs has a mode to change.", nameof(device));
        }
        var c = new Context(device);
        if (Libc.GetEUid() != 0)
        {
            throw new DaxReconfigurationException(DaxReconfigurationProblem.NotRoot, device.Name,
                $"changing a device's mode needs root: it writes {Path.Join(c.Drivers, driver)} and the memory blocks' state files. Run it as root (sudo).");
        }
        if (!Directory.Exists(Path.Join(c.Drivers, driver)))
        {
            throw new DaxReconfigurationException(DaxReconfigurationProblem.DriverMissing, device.Name,
                $"the {driver} driver is not loaded ({Path.Join(c.Drivers, driver)} does not exist): modprobe {driver}.");
        }
        return c;
    }

    // Processes that map the device node: /proc/PID/maps lines ending in the node's path.
    private static void ThrowIfMapped(DaxDevice device)
    {
        var users = new List<string>();
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
            {
                continue;
            }
            try
            {
                foreach (string line in File.ReadLines(Path.Join(dir, "maps")))
                {
                    if (line.EndsWith(" " + device.DevicePath, StringComparison.Ordinal))
                    {
                        users.Add(string.Create(CultureInfo.InvariantCulture, $"{pid} ({Sysfs.TryReadText(Path.Join(dir, "comm")) ?? "?"})"));
                        break;
                    }
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The process ended while being read, or its maps are not ours to read (only root changes modes).
            }
        }
        if (users.Count > 0)
        {
            throw new DaxReconfigurationException(DaxReconfigurationProblem.DeviceInUse, device.Name,
                $"{device.DevicePath} is mapped by process {string.Join(", ", users)}: unbinding device_dax would take the memory from under the mapping. "
                + "Unmap it (dispose every DaxMapping) and try again; nothing was changed.");
        }
    }

    private sealed class Context(DaxDevice device)
    {
        public DaxDevice Device { get; } = device;

        public string Root { get; } = device.SysfsRoot;

        public string Drivers => Path.Join(Root, "bus", "dax", "drivers");

        public string? AutoOnline => Sysfs.TryReadText(Path.Join(Root, "devices", "system", "memory", "auto_online_blocks"));

        public string? DriverNow() => SysfsReader.LinkName(Path.Join(Device.SysfsPath!, "driver"));

        public DaxDevice Reread() => new DaxBus(Root, Path.GetDirectoryName(Device.DevicePath) ?? "/dev").GetDevice(Device.Name);

        // The errno of writing text to a sysfs file (0 when it took).
        public unsafe int TryWrite(string path, string text)
        {
            int fd = Libc.Open(path, Libc.O_WRONLY | Libc.O_CLOEXEC, 0);
            if (fd < 0)
            {
                return SyscallError.LastErrno;
            }
            try
            {
                byte[] bytes = Encoding.ASCII.GetBytes(text);
                fixed (byte* p = bytes)
                {
                    // SAFETY: p holds bytes.Length bytes for the duration of the call.
                    return Libc.Write(fd, p, (nuint)bytes.Length) < 0 ? SyscallError.LastErrno : 0;
                }
            }
            finally
            {
                Libc.Close(fd);
            }
        }

        public void Write(string path, string text, string? hint = null)
        {
            int errno = TryWrite(path, text);
            if (errno != 0)
            {
                throw new DaxReconfigurationException(errno is Errno.EACCES or Errno.EPERM ? DaxReconfigurationProblem.NotRoot : DaxReconfigurationProblem.BindFailed, Device.Name,
                    SyscallError.Describe(errno, "write", path, -1, -1, hint ?? $"writing '{text}' was refused (dmesg says why)"), path, errno);
            }
        }
    }
}
