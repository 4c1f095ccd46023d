using System.CommandLine;
using DirectPmem.Driver;

namespace DirectPmem.Tool.Cli;

/// <summary>
/// Opens what a user names: a device-DAX character device, recognised by its file type and
/// <c>/sys/dev/char/MAJ:MIN/subsystem</c> (whatever its path), or an emulated device file.
/// </summary>
internal static class DeviceOpener
{
    /// <summary>The sysfs root, on every command that reads sysfs.</summary>
    internal static Option<string> SysfsOption() => new("--sysfs")
    {
        Description = "The sysfs root to read (a fixture tree for tests).",
        DefaultValueFactory = _ => "/sys",
    };

    /// <summary>Opens <paramref name="path"/> as a real device when it is a character device, else as an emulated device.</summary>
    /// <returns>The device; the caller disposes it.</returns>
    internal static DaxDevice Open(string path, string sysfsRoot, bool writable)
    {
        if (Directory.Exists(path))
        {
            throw new ToolException($"'{path}' is a directory, not a device or an emulated device file.");
        }
        if (!File.Exists(path))
        {
            throw new ToolException($"'{path}' does not exist (ENOENT).");
        }
        if (IsCharDevice(path, sysfsRoot, out DaxDevice? device))
        {
            return device!;
        }
        return DaxDevice.OpenEmulated(path, writable: writable);
    }

    /// <summary>
    /// Whether <paramref name="path"/> is a character device; if it is, it must be device-DAX
    /// (<see cref="DaxBus.OpenCharDevice"/> checks the subsystem link) and is returned.
    /// </summary>
    internal static bool IsCharDevice(string path, string sysfsRoot, out DaxDevice? device)
    {
        try
        {
            device = new DaxBus(sysfsRoot).OpenCharDevice(path);
            return true;
        }
        catch (DaxConfigurationException e) when (e.Rule == DaxConfigurationRule.NotDeviceDax && e.FilePath == path)
        {
            // Not a character device at all (the rule names the path itself, not its sysfs subsystem link).
            device = null;
            return false;
        }
    }
}
