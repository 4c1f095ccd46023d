using DirectPmem.Mapping;
using DirectPmem.Persistence;
using Xunit;

namespace DirectPmem.Storage.Tests;

/// <summary>The durability a pool records at creation, and the open that would run with less of it.</summary>
public sealed class PoolDurabilityTests
{
    private const string Layout = "durability";

    [Fact]
    public void APoolRecordsTheDurabilityAndBackingItWasCreatedWith()
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(64 << 10);
        using (PmemPool pool = PmemPool.Create(mapping, Layout))
        {
            Assert.Equal(mapping.Granularity, pool.Durability);
            Assert.Equal(mapping.Backing, pool.CreatedOnBacking);
        }
        using PmemPool reopened = PmemPool.Open(mapping, Layout);
        Assert.Equal(mapping.Granularity, reopened.Durability);
        PoolInspection inspection = PoolInspector.InspectPool(mapping, Layout);
        Assert.Equal(mapping.Granularity, inspection.Durability);
        Assert.Equal(mapping.Backing, inspection.CreatedOnBacking);
    }

    [Fact]
    public void AWritableOpenWithWeakerDurabilityIsATypedErrorUnlessAllowed()
    {
        using var dir = new TempDirectory();
        string path = dir.File("forced.pool");
        var forced = new DaxMappingOptions { ForceCacheLineGranularity = true };
        using (PmemPool pool = PmemPool.CreateFile(path, 64 << 10, Layout, mappingOptions: forced))
        {
            Assert.Equal(PersistGranularity.CacheLine, pool.Durability);
        }
        PersistGranularity plain;
        using (PmemFile file = PmemFile.Open(path, writable: false))
        using (DaxMapping probe = file.Map(new DaxMappingOptions { ReadOnly = true }))
        {
            plain = probe.Granularity;
        }
        if (plain >= PersistGranularity.CacheLine)
        {
            Assert.Skip($"'{path}' maps with {plain} durability without forcing (a DAX file system): no weaker mapping to open it with here");
        }

        byte[] before = File.ReadAllBytes(path);
        PoolDurabilityException e = Assert.Throws<PoolDurabilityException>(() => PmemPool.OpenFile(path, Layout).Dispose());
        Assert.Equal(PersistGranularity.CacheLine, e.Recorded);
        Assert.Equal(plain, e.Actual);
        Assert.Contains("AllowWeakerDurability", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(path)); // refused before anything was written

        // Mapped as it was created, read-only, or with the explicit opt-in, it opens.
        PmemPool.OpenFile(path, Layout, mappingOptions: forced).Dispose();
        using (PmemPool readOnly = PmemPool.OpenFile(path, Layout, new PoolOpenOptions { ReadOnly = true }))
        {
            Assert.True(readOnly.IsReadOnly);
        }
        using PmemPool allowed = PmemPool.OpenFile(path, Layout, new PoolOpenOptions { AllowWeakerDurability = true });
        Assert.False(allowed.IsReadOnly);
        Assert.Equal(PersistGranularity.CacheLine, allowed.Durability);
    }
}
