using System.Globalization;

namespace DirectPmem.Storage;

/// <summary>
/// Reads the NVDIMMs' dirty-shutdown counts (<c>/sys/bus/nd/devices/nmem*/nfit/dirty_shutdown</c>,
/// PMDK's "unsafe shutdown count"): a count that moved since a pool was last opened means the
/// platform lost data in flight during a power failure, whatever the pool's own flag says.
/// </summary>
internal static class DirtyShutdownCounter
{
    /// <summary>
    /// The sum of every nmem's count under <paramref name="sysfsRoot"/>, or <see langword="null"/>
    /// when no nmem exposes one (no NVDIMMs, or not NFIT ones). A file that cannot be read or
    /// parsed as a decimal count makes the whole answer unknown: a half-known sum would compare wrong.
    /// </summary>
    public static ulong? Read(string sysfsRoot)
    {
        string devices = Path.Combine(sysfsRoot, "bus", "nd", "devices");
        if (!Directory.Exists(devices))
        {
            return null;
        }
        ulong sum = 0;
        bool any = false;
        IEnumerable<string> nmems;
        try
        {
            nmems = Directory.EnumerateDirectories(devices, "nmem*").Order(StringComparer.Ordinal).ToList();
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
        foreach (string nmem in nmems)
        {
            string file = Path.Combine(nmem, "nfit", "dirty_shutdown");
            if (!File.Exists(file))
            {
                continue;
            }
            string text;
            try
            {
                text = File.ReadAllText(file).Trim();
            }
            catch (IOException)
            {
                return null;
            }
            catch (UnauthorizedAccessException)
            {
                return null;
            }
            if (!ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out ulong count))
            {
                return null;
            }
            sum = unchecked(sum + count);
            any = true;
        }
        return any ? sum : null;
    }
}
