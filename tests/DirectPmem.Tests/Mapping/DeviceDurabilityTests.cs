using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Persistence;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Mapping;

/// <summary>
/// One durability answer: a device's <see cref="DaxDevice.Granularity"/> and <see cref="DaxDevice.Persistence"/>
/// agree with what its mappings really get (issue 10: an emulated device on an fsdax file must not
/// report PageCache while its mappings get CacheLine).
/// </summary>
public sealed class DeviceDurabilityTests
{
    private const long Mib2 = 2L << 20;

    private static void SkipIfForced()
    {
        if (PersistenceSettings.Current.ForceGranularity is not null)
        {
            Assert.Skip($"{PersistenceSettings.ForceGranularityVariable} is set in this process");
        }
    }

    [Fact]
    public void AnEmulatedDeviceOnAPageCacheFileSaysPageAndItsMappingsArePage()
    {
        SkipIfForced();
        using TempDirectory dir = PageCacheDirectory.Create();
        using DaxDevice device = DaxDevice.CreateEmulated(dir.File("dev"), 2 * Mib2, PageSize.Pmd);
        using DaxMapping map = device.Map();
        Assert.Equal(PersistGranularity.Page, device.Granularity);
        Assert.Equal(DaxPersistence.PageCache, device.Persistence);
        Assert.Equal(device.Granularity, map.Granularity);
    }

    [Fact]
    public void AnEmulatedDeviceInMemorySaysVolatileAndItsMappingsAreNone()
    {
        SkipIfForced();
        using DaxDevice device = DaxDevice.CreateEmulatedMemory("durability", 2 * Mib2, PageSize.Pmd);
        using DaxMapping map = device.Map();
        Assert.Equal(PersistGranularity.None, device.Granularity);
        Assert.Equal(DaxPersistence.Volatile, device.Persistence);
        Assert.Equal(device.Granularity, map.Granularity);
    }
}
