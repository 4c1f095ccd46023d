using DirectPmem.Driver;
using DirectPmem.Tests.Fixtures;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Driver;

/// <summary>
/// What the region reader tells about deep flush (the kernel's <c>deep_flush</c>: hidden when the
/// region's flush mechanism is unknown, <c>0</c> read-only without flush hints, <c>1</c> with them).
/// </summary>
public sealed class DeepFlushRegionTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private DaxRegion Region(string? deepFlush)
    {
        string region = Path.Combine(_temp.Path, "bus", "nd", "devices", "region0");
        Directory.CreateDirectory(region);
        File.WriteAllText(Path.Combine(region, "size"), "8388608\n");
        File.WriteAllText(Path.Combine(region, "persistence_domain"), "memory_controller\n");
        string file = Path.Combine(region, "deep_flush");
        if (deepFlush is null)
        {
            File.Delete(file);
        }
        else
        {
            File.WriteAllText(file, deepFlush + "\n");
        }
        return Assert.Single(new DaxBus(_temp.Path).GetRegions());
    }

    [Fact]
    public void ARegionWithFlushHintsSupportsDeepFlushThroughItsAttribute()
    {
        DaxRegion region = Region("1");
        Assert.True(region.DeepFlushPresent);
        Assert.True(region.DeepFlushSupported);
        Assert.Equal(Path.Combine(region.SysfsPath, "deep_flush"), region.DeepFlushPath);
    }

    [Fact]
    public void ARegionWithoutFlushHintsHasTheAttributeButNoDeepFlush()
    {
        DaxRegion region = Region("0");
        Assert.True(region.DeepFlushPresent);
        Assert.False(region.DeepFlushSupported);
        Assert.NotNull(region.DeepFlushPath);
    }

    [Fact]
    public void ARegionWhoseFlushMechanismIsUnknownHasNoAttribute()
    {
        DaxRegion region = Region(null);
        Assert.False(region.DeepFlushPresent);
        Assert.False(region.DeepFlushWritable);
        Assert.False(region.DeepFlushSupported);
        Assert.Null(region.DeepFlushPath);
    }

    [Theory]
    [InlineData("2")]
    [InlineData("yes")]
    [InlineData("")]
    public void AnythingButZeroOrOneIsATypedErrorNamingTheAttribute(string text)
    {
        var error = Assert.Throws<DaxConfigurationException>(() => Region(text));
        Assert.Equal(DaxConfigurationRule.OutOfRange, error.Rule);
        Assert.EndsWith("region0/deep_flush", error.FilePath, StringComparison.Ordinal);
        Assert.Contains($"'{text}'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheFixtureRegionWithoutFlushHintsIsReadAsSuch()
    {
        DaxRegion region0 = new DaxBus(FixturePaths.Sysfs("good")).GetRegions()[0];
        Assert.True(region0.DeepFlushPresent);
        Assert.False(region0.DeepFlushSupported);
    }
}
