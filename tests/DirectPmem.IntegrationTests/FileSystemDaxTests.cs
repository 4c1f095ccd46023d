using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Persistence;

namespace DirectPmem.IntegrationTests;

/// <summary>
/// A file on ext4 mounted -o dax is mapped with MAP_SYNC and made durable by cache flushes; a
/// file on ext4 without DAX (a sector-mode namespace) goes through the page cache and msync.
/// </summary>
public sealed class FileSystemDaxTests(ITestOutputHelper output)
{
    private const long FileSize = 4L << 20;

    [Fact]
    public void A_file_on_a_dax_mount_is_classified_as_fsdax_and_mapped_with_MAP_SYNC()
    {
        string dir = IntegrationEnvironment.RequireFsDaxDirectory();
        string path = IntegrationEnvironment.NewFile(dir, "fsdax");
        try
        {
            using PmemFile file = PmemFile.Create(path, FileSize);
            using DaxMapping map = file.Map();
            PageSizeObservation seen = map.ObservePageSize();
            output.WriteLine($"fsdax file {path}: Backing={file.Backing} Granularity={map.Granularity} VmFlags='{seen.VmFlags}'");

            Assert.Equal(MappingBacking.FsDaxFile, file.Backing);
            Assert.Equal(MappingBacking.FsDaxFile, map.Backing);
            // "sf" is VM_SYNC in smaps: the kernel accepted MAP_SHARED_VALIDATE | MAP_SYNC for this VMA.
            Assert.Contains("sf", seen.VmFlags.Split(' ', StringSplitOptions.RemoveEmptyEntries));
            Assert.True(seen.DontFork, $"the mapping lacks MADV_DONTFORK: VmFlags '{seen.VmFlags}'");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_file_on_a_dax_mount_reports_cache_line_granularity()
    {
        string dir = IntegrationEnvironment.RequireFsDaxDirectory();
        string path = IntegrationEnvironment.NewFile(dir, "fsdax-granularity");
        try
        {
            using PmemFile file = PmemFile.Create(path, FileSize);
            using DaxMapping map = file.Map();
            output.WriteLine($"fsdax file: Granularity={map.Granularity}");
            Assert.Equal(PersistGranularity.CacheLine, map.Granularity);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Data_persisted_through_one_fsdax_mapping_is_read_back_through_a_second()
    {
        string dir = IntegrationEnvironment.RequireFsDaxDirectory();
        string path = IntegrationEnvironment.NewFile(dir, "fsdax-readback");
        try
        {
            byte[] pattern = Pattern(3000, seed: 7);
            using (PmemFile file = PmemFile.Create(path, FileSize))
            using (DaxMapping writer = file.Map())
            {
                pattern.CopyTo(writer.GetSpan(FileSize / 2 + 123, pattern.Length));
                writer.Persist(FileSize / 2 + 123, pattern.Length);
            }
            using PmemFile reopened = PmemFile.Open(path, writable: false);
            using DaxMapping reader = reopened.Map(new DaxMappingOptions { ReadOnly = true });
            Assert.Equal(pattern, reader.GetReadOnlySpan(FileSize / 2 + 123, pattern.Length).ToArray());
            output.WriteLine($"fsdax: {pattern.Length} bytes persisted and read back through a second mapping of {path}");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_file_on_a_non_dax_file_system_is_a_page_cache_file_with_page_granularity()
    {
        string dir = IntegrationEnvironment.RequirePageCacheDirectory();
        string path = IntegrationEnvironment.NewFile(dir, "pagecache");
        try
        {
            using PmemFile file = PmemFile.Create(path, FileSize);
            using DaxMapping map = file.Map();
            PageSizeObservation seen = map.ObservePageSize();
            output.WriteLine($"non-DAX ext4 file {path}: Backing={file.Backing} Granularity={map.Granularity} VmFlags='{seen.VmFlags}'");

            Assert.Equal(MappingBacking.PageCacheFile, file.Backing);
            Assert.Equal(PersistGranularity.Page, map.Granularity);
            Assert.DoesNotContain("sf", seen.VmFlags.Split(' ', StringSplitOptions.RemoveEmptyEntries));

            // Page granularity persists with msync, which a page-cache file accepts.
            map.GetSpan(4096, 5).Fill(0x5A);
            map.Persist(4096, 5);
            Assert.Equal(0x5A, map.GetReadOnlySpan(4100, 1)[0]);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_file_on_a_dax_mount_refuses_a_misaligned_2MiB_mapping_before_mmap()
    {
        string dir = IntegrationEnvironment.RequireFsDaxDirectory();
        string path = IntegrationEnvironment.NewFile(dir, "fsdax-misaligned");
        try
        {
            using PmemFile file = PmemFile.Create(path, FileSize);
            ArgumentException error = Assert.Throws<ArgumentException>(() => file.Map(new DaxMappingOptions { Offset = 4096, PageSize = PageSize.Pmd }));
            output.WriteLine($"refused: {error.Message}");
            Assert.Contains("2 MiB", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    internal static byte[] Pattern(int length, int seed)
    {
        byte[] bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}
