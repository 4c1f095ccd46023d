using DirectPmem.Driver;
using DirectPmem.Persistence;
using DirectPmem.Tests.Fixtures;
using Xunit;

namespace DirectPmem.Tests.Persistence;

public sealed class EadrDetectorTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "directpmem-sysfs-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    private void Region(string name, string? domain)
    {
        string directory = Path.Combine(_root, "bus", "nd", "devices", name);
        Directory.CreateDirectory(directory);
        if (domain is not null)
        {
            File.WriteAllText(Path.Combine(directory, "persistence_domain"), domain + "\n");
        }
    }

    [Fact]
    public void EveryRegionInTheCpuCacheDomainMeansEadr()
    {
        Region("region0", "cpu_cache");
        Region("region1", "cpu_cache");
        Region("namespace0.0", "memory_controller"); // not a region: ignored
        Assert.True(EadrDetector.Detect(_root).IsEadr);
    }

    [Fact]
    public void OneRegionInTheMemoryControllerDomainMeansNoEadr()
    {
        Region("region0", "cpu_cache");
        Region("region1", "memory_controller");
        EadrStatus status = EadrDetector.Detect(_root);
        Assert.False(status.IsEadr);
        Assert.Contains("region1", status.Reason, StringComparison.Ordinal);
        Assert.Contains("memory_controller", status.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void ARegionWithoutAPersistenceDomainMeansNoEadr()
    {
        Region("region0", null);
        Assert.False(EadrDetector.Detect(_root).IsEadr);
    }

    [Fact]
    public void NoRegionsAtAllMeansNoEadr()
    {
        EadrStatus status = EadrDetector.Detect(_root);
        Assert.False(status.IsEadr);
        Assert.Contains("no NVDIMM regions", status.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("cpu_cache", "cpu_cache", true)]
    [InlineData("cpu_cache", "memory_controller", false)]
    [InlineData("cpu_cache", "", false)]
    [InlineData("cpu_cache", "cpu_cache ", true)] // trimmed the same way by the one reader
    public void TheDetectorAndTheBusReadTheSameRegionsTheSameWay(string first, string second, bool eadr)
    {
        Region("region0", first);
        Region("region1", second);
        Region("region2x", "memory_controller"); // not a kernel name: neither reads it
        foreach (string name in new[] { "region0", "region1" })
        {
            File.WriteAllText(Path.Combine(_root, "bus", "nd", "devices", name, "size"), "8388608\n");
        }
        IReadOnlyList<DaxRegion> regions = new DaxBus(_root).GetRegions();
        Assert.Equal(["region0", "region1"], regions.Select(r => r.Name));
        Assert.Equal(eadr, regions.All(r => r.PersistenceDomain == DaxPersistence.CpuCache));
        Assert.Equal(eadr, EadrDetector.Detect(_root).IsEadr);
    }

    [Fact]
    public void TheFixtureTreeAgreesWithItsRegions()
    {
        string root = FixturePaths.Sysfs("good");
        bool allCpuCache = new DaxBus(root).GetRegions().All(r => r.PersistenceDomain == DaxPersistence.CpuCache);
        Assert.Equal(allCpuCache, EadrDetector.Detect(root).IsEadr);
    }
}
