using DirectPmem.Interop;

namespace DirectPmem.Persistence;

/// <summary>
/// Decides whether the CPU caches are in the persistence domain (eADR): only if every NVDIMM
/// region reads <c>cpu_cache</c> in <c>persistence_domain</c>. Regions are read by
/// <see cref="NdRegionReader"/>, the same reader <c>DaxBus</c> builds <c>DaxRegion</c> from.
/// </summary>
internal static class EadrDetector
{
    /// <summary>The answer for this machine, read once.</summary>
    internal static EadrStatus Current { get; } = Detect("/sys");

    /// <summary>Reads the regions under <paramref name="sysfsRoot"/> (normally <c>/sys</c>; tests pass a fake tree).</summary>
    internal static EadrStatus Detect(string sysfsRoot)
    {
        string devices = NdRegionReader.DevicesPath(sysfsRoot);
        List<string> names;
        try
        {
            names = NdRegionReader.ListNames(sysfsRoot);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new EadrStatus(false, $"{devices} cannot be read ({e.Message}).");
        }
        if (names.Count == 0)
        {
            return new EadrStatus(false, $"no NVDIMM regions under {devices}, so no platform guarantees that CPU caches are persistent.");
        }
        foreach (string name in names)
        {
            NdRegionAttributes region = NdRegionReader.Read(sysfsRoot, name);
            if (region.PersistenceDomain != NdPersistenceDomain.CpuCache)
            {
                string file = region.Attribute("persistence_domain");
                return new EadrStatus(false, string.IsNullOrEmpty(region.PersistenceDomainText)
                    ? $"{file} is missing, empty or unreadable (the platform does not say its caches are persistent)."
                    : $"{file} reads '{region.PersistenceDomainText}', not 'cpu_cache' (no eADR).");
            }
        }
        return new EadrStatus(true, $"every region under {devices} has persistence_domain 'cpu_cache'.");
    }
}

/// <summary>Whether the platform has eADR, and why.</summary>
/// <param name="IsEadr">The CPU caches are in the persistence domain.</param>
/// <param name="Reason">What was read to decide.</param>
internal readonly record struct EadrStatus(bool IsEadr, string Reason);
