namespace DirectPmem.Persistence;

/// <summary>
/// Decides whether the CPU caches are in the persistence domain (eADR): only if every
/// <c>/sys/bus/nd/devices/region*/persistence_domain</c> reads <c>cpu_cache</c>.
/// </summary>
internal static class EadrDetector
{
    /// <summary>The answer for this machine, read once.</summary>
    internal static EadrStatus Current { get; } = Detect("/sys");

    /// <summary>Reads the regions under <paramref name="sysfsRoot"/> (normally <c>/sys</c>; tests pass a fake tree).</summary>
    internal static EadrStatus Detect(string sysfsRoot)
    {
        string devices = Path.Combine(sysfsRoot, "bus", "nd", "devices");
        string[] regions;
        try
        {
            regions = Directory.Exists(devices) ? Directory.GetDirectories(devices, "region*") : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new EadrStatus(false, $"{devices} cannot be read ({e.Message}).");
        }
        if (regions.Length == 0)
        {
            return new EadrStatus(false, $"no NVDIMM regions under {devices}, so no platform guarantees that CPU caches are persistent.");
        }
        Array.Sort(regions, StringComparer.Ordinal);
        foreach (string region in regions)
        {
            string file = Path.Combine(region, "persistence_domain");
            string domain;
            try
            {
                domain = File.Exists(file) ? File.ReadAllText(file).Trim() : "";
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return new EadrStatus(false, $"{file} cannot be read ({e.Message}).");
            }
            if (domain != "cpu_cache")
            {
                return new EadrStatus(false, domain.Length == 0
                    ? $"{file} is missing or empty (the platform does not say its caches are persistent)."
                    : $"{file} reads '{domain}', not 'cpu_cache' (no eADR).");
            }
        }
        return new EadrStatus(true, $"every region under {devices} has persistence_domain 'cpu_cache'.");
    }
}

/// <summary>Whether the platform has eADR, and why.</summary>
/// <param name="IsEadr">The CPU caches are in the persistence domain.</param>
/// <param name="Reason">What was read to decide.</param>
internal readonly record struct EadrStatus(bool IsEadr, string Reason);
