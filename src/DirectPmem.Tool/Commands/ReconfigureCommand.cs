using System.CommandLine;
using System.Globalization;
using DirectPmem.Driver;
using DirectPmem.Placement;
using DirectPmem.Tool.Cli;

namespace DirectPmem.Tool.Commands;

/// <summary>
/// <c>dpmem reconfigure DEVICE --mode system-ram|devdax</c>: hands a device to the kernel as
/// system RAM (kmem, memory blocks onlined) or takes it back, like <c>daxctl reconfigure-device</c>.
/// Needs root; without it the error says so and nothing changes.
/// </summary>
internal static class ReconfigureCommand
{
    internal static Command Create()
    {
        var device = new Argument<string>("device") { Description = "The device's name (dax0.0) or node (/dev/dax0.0)." };
        var mode = new Option<string>("--mode", "-m")
        {
            Description = "system-ram: bind kmem and online the memory blocks; devdax: offline them and bind device_dax.",
            Required = true,
        };
        mode.AcceptOnlyFromAmong("system-ram", "devdax");
        var zone = new Option<string>("--zone")
        {
            Description = "For system-ram: movable (can be taken back, the default) or normal (the kernel may keep pages there until reboot).",
            DefaultValueFactory = _ => "movable",
        };
        zone.AcceptOnlyFromAmong("movable", "normal");
        Option<string> sysfs = DeviceOpener.SysfsOption();
        var command = new Command("reconfigure", "Change a device between devdax and system-ram mode (needs root).") { device, mode, zone, sysfs };
        CommandRunner.SetAction(command, parse => Run(parse.GetValue(sysfs)!, parse.GetValue(device)!, parse.GetValue(mode)!, parse.GetValue(zone)!));
        return command;
    }

    private static int Run(string sysfsRoot, string name, string mode, string zone)
    {
        DaxDevice device = new DaxBus(sysfsRoot).GetDevice(Path.GetFileName(name));
        DaxDevice now = mode == "system-ram"
            ? DaxReconfiguration.ToSystemRam(device, zone == "normal" ? MemoryZone.Normal : MemoryZone.Movable)
            : DaxReconfiguration.ToDeviceDax(device);
        Console.WriteLine(Describe(now));
        return 0;
    }

    internal static string Describe(DaxDevice device)
    {
        string node = device.TargetNode?.ToString(CultureInfo.InvariantCulture) ?? "-";
        if (device.DeviceMode == DaxDeviceMode.SystemRam)
        {
            IReadOnlyList<MemoryBlock> blocks = device.MemoryBlocks ?? [];
            return string.Create(CultureInfo.InvariantCulture,
                $"{device.Name}: system-ram on node {node}, {blocks.Count(b => b.IsOnline)} of {blocks.Count} memory blocks online ({string.Join(' ', blocks.SelectMany(b => b.ValidZones).Distinct())})");
        }
        return $"{device.Name}: {device.Mode} on node {node}, {Sizes.Format(device.Size)} at {device.DevicePath}";
    }
}
