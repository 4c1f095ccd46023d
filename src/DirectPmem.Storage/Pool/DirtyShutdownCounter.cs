using System.Globalization;

namespace DirectPmem.Storage;

/// <summary>
/// Reads the dirty-shutdown counts (<c>nmem*/nfit/dirty_shutdown</c>, PMDK's "unsafe shutdown count") of
/// exactly the NVDIMMs behind one region, as libpmem2's <c>pmem2_source_device_usc</c> does: the region's
/// <c>mapping0..N</c> attributes name its DIMMs (<c>nmem0,offset,length,position</c>). A count that moved
/// since a pool was last opened means the platform lost data in flight to that interleave set during a
/// power failure, whatever the pool's own flag says; a DIMM of another region does not concern the pool.
/// </summary>
internal static class DirtyShutdownCounter
{
    /// <summary>
    /// The sum of the counts of the DIMMs of <paramref name="region"/> (<c>region0</c>) under
    /// <paramref name="sysfsRoot"/>, or <see langword="null"/> when unknown: no region (the pool is not on an
    /// NVDIMM), a region without mappings, or a DIMM whose count is missing or cannot be read or parsed as a
    /// decimal (a half-known sum would compare wrong).
    /// </summary>
    public static ulong? Read(string sysfsRoot, string? region)
    {
        if (region is null || region.Contains('/', StringComparison.Ordinal) || region.Contains("..", StringComparison.Ordinal))
        {
            return null;
        }
        string devices = Path.Combine(sysfsRoot, "bus", "nd", "devices");
        string regionDir = Path.Combine(devices, region);
        try
        {
            var dimms = new SortedSet<string>(StringComparer.Ordinal);
            for (int i = 0; ; i++)
            {
                string mapping = Path.Combine(regionDir, "mapping" + i.ToString(CultureInfo.InvariantCulture));
                if (!File.Exists(mapping))
                {
                    break;
                }
                string dimm = File.ReadAllText(mapping).Split(',')[0].Trim();
                if (dimm.Length == 0 || dimm.Contains('/', StringComparison.Ordinal) || dimm.Contains("..", StringComparison.Ordinal))
                {
                    return null;
                }
                dimms.Add(dimm);
            }
            if (dimms.Count == 0)
            {
                return null;
            }
            ulong sum = 0;
            foreach (string dimm in dimms)
            {
                string file = Path.Combine(devices, dimm, "nfit", "dirty_shutdown");
                if (!File.Exists(file)
                    || !ulong.TryParse(File.ReadAllText(file).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out ulong count))
                {
                    return null;
                }
                sum = unchecked(sum + count);
            }
            return sum;
        }
        catch (IOException)
        {
            return null; // unreadable sysfs: the count is unknown, and an unknown count is never compared
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
