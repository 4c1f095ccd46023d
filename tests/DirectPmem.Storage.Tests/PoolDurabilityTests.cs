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
        using (PmemPool pool = TestPools.Create(mapping, Layout))
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
    public void CreatingAPoolOnVolatileMemoryIsATypedErrorNamingTheBackingAndTheOptIn()
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(64 << 10);
        PoolVolatileBackingException e = Assert.Throws<PoolVolatileBackingException>(() => PmemPool.Create(mapping, Layout).Dispose());
        Assert.Equal(MappingBacking.Anonymous, e.Backing);
        Assert.Contains("PmemPool.Create", e.Message, StringComparison.Ordinal);
        Assert.Contains("PoolCreateOptions.AllowVolatile", e.Message, StringComparison.Ordinal);
        Assert.False(mapping.GetReadOnlySpan(0, (int)mapping.Length).ContainsAnyExcept((byte)0)); // nothing was written
        Assert.False(PoolInspector.InspectPool(mapping).LooksLikePool);

        // With the opt-in it is created, and the pool says where it lives.
        using (PmemPool pool = PmemPool.Create(mapping, Layout, new PoolCreateOptions { AllowVolatile = true }))
        {
            Assert.True(pool.CreatedOnVolatileMemory);
        }
        Assert.True(PoolInspector.InspectPool(mapping, Layout).CreatedOnVolatileMemory);
    }

    [Fact]
    public void CreateFileOnTmpfsIsRefusedAndLeavesNoFileAndAPageCacheFileNeedsNoOptIn()
    {
        string shm = "/dev/shm";
        if (!Directory.Exists(shm))
        {
            Assert.Skip("no /dev/shm here: no tmpfs to create a pool on");
        }
        string path = Path.Combine(shm, "directpmem-volatile-" + Guid.NewGuid().ToString("n"));
        try
        {
            PoolVolatileBackingException e;
            try
            {
                e = Assert.Throws<PoolVolatileBackingException>(() => PmemPool.CreateFile(path, 64 << 10, Layout).Dispose());
            }
            catch (Xunit.Sdk.ThrowsException) when (File.Exists(path))
            {
                using PmemPool created = PmemPool.OpenFile(path, Layout, new PoolOpenOptions { ReadOnly = true });
                Assert.Skip($"{shm} is {created.CreatedOnBacking} here, not tmpfs: nothing volatile to refuse");
                throw;
            }
            Assert.Equal(MappingBacking.SharedMemory, e.Backing);
            Assert.Contains("PmemPool.CreateFile", e.Message, StringComparison.Ordinal);
            Assert.Contains(path, e.Message, StringComparison.Ordinal);
            Assert.False(File.Exists(path)); // a retry with the opt-in can create it
            using PmemPool pool = PmemPool.CreateFile(path, 64 << 10, Layout, new PoolCreateOptions { AllowVolatile = true });
            Assert.True(pool.CreatedOnVolatileMemory);
            Assert.Equal(MappingBacking.SharedMemory, pool.CreatedOnBacking);
        }
        finally
        {
            File.Delete(path);
        }

        (string? root, string reason) = PageCacheProbe.Found;
        if (root is null)
        {
            Assert.Skip("the tmpfs refusal passed; no page-cache file system to show the durable case: " + reason);
        }
        string durable = Path.Combine(root, "directpmem-durable-" + Guid.NewGuid().ToString("n"));
        try
        {
            using PmemPool pool = PmemPool.CreateFile(durable, 64 << 10, Layout);
            Assert.False(pool.CreatedOnVolatileMemory);
            Assert.Equal(MappingBacking.PageCacheFile, pool.CreatedOnBacking);
        }
        finally
        {
            File.Delete(durable);
        }
    }

    [Fact]
    public void AWritableOpenWithWeakerDurabilityIsATypedErrorUnlessAllowed()
    {
        using var dir = new TempDirectory();
        string path = dir.File("forced.pool");
        var forced = new DaxMappingOptions { ForceCacheLineGranularity = true };
        using (PmemPool pool = TestPools.CreateFile(path, 64 << 10, Layout, mappingOptions: forced))
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
