using DirectPmem.Mapping;
using DirectPmem.Persistence;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Persistence;

public sealed unsafe class GranularityTests : IDisposable
{
    // A page-cache directory (DIRECTPMEM_PAGECACHE_DIR, or found; the tests skip with the reason when
    // none is writable), not /var/tmp, which may be read-only or a tmpfs.
    private readonly Lazy<TempDirectory> _pageCache = new(PageCacheDirectory.Create);

    private string PageCachePath => _pageCache.Value.Path;

    public void Dispose()
    {
        if (_pageCache.IsValueCreated)
        {
            _pageCache.Value.Dispose();
        }
    }

    private static void SkipIfForcedByEnvironment()
    {
        if (PersistenceSettings.Current.ForceGranularity is not null)
        {
            Assert.Skip($"{PersistenceSettings.ForceGranularityVariable} is set in this process");
        }
    }

    [Fact]
    public void AnOrdinaryFileHasPageGranularityAndPersistsThroughMsync()
    {
        SkipIfForcedByEnvironment();
        string path = Path.Combine(PageCachePath, "page");
        using (PmemFile file = PmemFile.Create(path, 8192))
        {
            Assert.Equal(MappingBacking.PageCacheFile, file.Backing);
            using DaxMapping mapping = file.Map();
            Assert.Equal(PersistGranularity.Page, mapping.Granularity);
            mapping.Write("durable"u8, 4000);
            mapping.Persist(4090, 10);
            mapping.Flush(0, 8192);
            mapping.Drain();
        }
        // Read through the file (the page cache the msync wrote back), after the lock is released.
        Assert.True(File.ReadAllBytes(path).AsSpan(4000, 7).SequenceEqual("durable"u8));
    }

    [Fact]
    public void ASharedMemoryFileHasNoGranularity()
    {
        SkipIfForcedByEnvironment();
        using PmemFile memory = PmemFile.CreateMemory("granularity", 8192);
        using DaxMapping mapping = memory.Map();
        Assert.Equal(MappingBacking.SharedMemory, mapping.Backing);
        Assert.Equal(PersistGranularity.None, mapping.Granularity);
        mapping.Persist(0, 8192);
    }

    [Fact]
    public void AnonymousMemoryHasNoGranularity()
    {
        SkipIfForcedByEnvironment();
        using DaxMapping mapping = DaxMapping.CreateAnonymous(4096);
        Assert.Equal(PersistGranularity.None, mapping.Granularity);
    }

    [Fact]
    public void AForcedMappingHasCacheLineGranularityOnAFileSharedMemoryAndAnonymousMemory()
    {
        if (PersistencePlatform.FlushRoutine == null)
        {
            Assert.Skip("no flush routine: " + PersistencePlatform.InstructionReason);
        }
        var forced = new DaxMappingOptions { ForceCacheLineGranularity = true };
        using PmemFile file = PmemFile.Create(Path.Combine(PageCachePath, "forced"), 8192);
        using PmemFile memory = PmemFile.CreateMemory("forced", 8192);
        using DaxMapping fileMapping = file.Map(forced);
        using DaxMapping memoryMapping = memory.Map(forced);
        using DaxMapping anonymous = DaxMapping.CreateAnonymous(4096, forced);
        foreach (DaxMapping mapping in new[] { fileMapping, memoryMapping, anonymous })
        {
            Assert.Equal(PersistGranularity.CacheLine, mapping.Granularity);
            mapping.Publish(64, 42);
            mapping.Persist(0, 4096);
            Assert.Equal(42UL, mapping.GetReadOnlyRef<ulong>(64));
        }
    }

    [Fact]
    public void RequiringCacheLineGranularityOfAPageCacheFileIsRefusedWithTheReason()
    {
        SkipIfForcedByEnvironment();
        using PmemFile file = PmemFile.Create(Path.Combine(PageCachePath, "required"), 8192);
        Assert.Equal(MappingBacking.PageCacheFile, file.Backing);
        PmemCapabilityException e = Assert.Throws<PmemCapabilityException>(
            () => file.Map(new DaxMappingOptions { RequiredGranularity = PersistGranularity.CacheLine }));
        Assert.Contains("page cache", e.Message, StringComparison.Ordinal);
        Assert.Contains("MAP_SYNC", e.Message, StringComparison.Ordinal);
        Assert.Contains(file.Path, e.Message, StringComparison.Ordinal);

        // Page or coarser is what it has: accepted.
        using DaxMapping page = file.Map(new DaxMappingOptions { RequiredGranularity = PersistGranularity.Page });
        Assert.Equal(PersistGranularity.Page, page.Granularity);
    }

    [Fact]
    public void RequiringAnyGranularityOfVolatileMemoryIsRefusedWithTheReason()
    {
        SkipIfForcedByEnvironment();
        PmemCapabilityException e = Assert.Throws<PmemCapabilityException>(
            () => DaxMapping.CreateAnonymous(4096, new DaxMappingOptions { RequiredGranularity = PersistGranularity.Page }));
        Assert.Contains("volatile", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RequiringByteGranularityWithoutEadrIsRefusedWithTheReason()
    {
        if (PersistencePlatform.PmemGranularity == PersistGranularity.Byte || PersistencePlatform.FlushRoutine == null)
        {
            Assert.Skip("this platform has eADR (or flushing disabled) or no flush routine");
        }
        PmemCapabilityException e = Assert.Throws<PmemCapabilityException>(
            () => PersistencePlatform.Choose(DurabilityClass.DeviceDax, forceCacheLine: false, PersistGranularity.Byte, "'/dev/dax0.0'"));
        Assert.Contains("eADR", e.Message, StringComparison.Ordinal);
        Assert.Contains("/dev/dax0.0", e.Message, StringComparison.Ordinal);
        Assert.Equal(PersistGranularity.CacheLine,
            PersistencePlatform.Choose(DurabilityClass.DeviceDax, forceCacheLine: false, PersistGranularity.CacheLine, "'/dev/dax0.0'"));
    }
}
