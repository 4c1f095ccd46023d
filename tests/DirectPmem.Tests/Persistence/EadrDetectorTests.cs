using DirectPmem.Persistence;
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
}
