using System.Runtime.InteropServices;
using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Interop;
using DirectPmem.Mapping;

namespace DirectPmem.IntegrationTests;

/// <summary>
/// <see cref="DaxMapping.DeepFlush"/> against the kernel's NVDIMM driver: what the emulated region
/// exposes as <c>deep_flush</c>, and a deep flush of a device-DAX mapping, of a file on the
/// <c>-o dax</c> mount and of a file on the page-cache ext4 of the sector namespace, each of which
/// finds <c>region0</c> from its device number.
/// </summary>
[Collection(DeviceTestGroup.Name)]
public sealed partial class DeepFlushTests(ITestOutputHelper output)
{
    private const long TwoMiB = 2L << 20;
    private const string Region0 = "/sys/bus/nd/devices/region0";

    [LibraryImport("libc.so.6", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc.so.6", EntryPoint = "close")]
    private static partial int Close(int fd);

    [LibraryImport("libc.so.6", EntryPoint = "access", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Access(string path, int mode);

    [Fact]
    public void The_emulated_region_shows_a_read_only_deep_flush_reading_0_which_even_root_cannot_open_for_writing()
    {
        using DaxDevice device = DaxDevice.Open(IntegrationEnvironment.RequireDevice());
        string attribute = Path.Combine(Region0, "deep_flush");
        bool present = File.Exists(attribute);
        string? value = present ? File.ReadAllText(attribute).Trim() : null;
        UnixFileMode? mode = present ? File.GetUnixFileMode(attribute) : null;
        int accessW = Access(attribute, 2);
        int fd = Open(attribute, 1 /* O_WRONLY */);
        int openErrno = fd < 0 ? Marshal.GetLastPInvokeError() : 0;
        if (fd >= 0)
        {
            _ = Close(fd);
        }
        output.WriteLine($"{attribute}: present {present}, value '{value}', mode {(mode is { } m ? Convert.ToString((int)m, 8) : "-")}, uid {Environment.UserName}, access(W_OK) {accessW}, open(O_WRONLY) errno {openErrno}");
        output.WriteLine($"persistence_domain: '{(File.Exists(Path.Combine(Region0, "persistence_domain")) ? File.ReadAllText(Path.Combine(Region0, "persistence_domain")).Trim() : "(absent)")}'");

        // qemu's NFIT gives the NVDIMM no flush hint addresses: the kernel's nvdimm_has_flush() is 0,
        // so deep_flush is shown read-only (0444) and reads 0.
        Assert.True(present, "region0 has no deep_flush");
        Assert.Equal("0", value);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead, mode);
        // Root passes access(W_OK), but kernfs refuses to open a file without a write bit for writing.
        Assert.Equal(0, accessW);
        Assert.Equal(13 /* EACCES */, openErrno);
        // So the library calls it read-only, through the region reader and the map path alike.
        Assert.False(NdRegionLocator.IsWritable(attribute));
        DaxRegion region = Assert.IsType<DaxRegion>(device.Region);
        Assert.Equal("region0", region.Name);
        Assert.True(region.DeepFlushPresent);
        Assert.False(region.DeepFlushWritable);
        Assert.False(region.DeepFlushSupported);
    }

    [Fact]
    public void Deep_flush_of_a_device_dax_mapping_finds_region0_through_dev_char_and_persists()
    {
        using DaxDevice device = DaxDevice.Open(IntegrationEnvironment.RequireDevice());
        long offset = RangeValidator.AlignDown(device.Size * 7 / 8, TwoMiB);
        byte[] data = FileSystemDaxTests.Pattern(5000, seed: 77);
        using (DaxMapping map = device.Map(new DaxMappingOptions { Offset = offset, Length = TwoMiB }))
        {
            data.CopyTo(map.GetSpan(4000, data.Length));
            DeepFlushResult result = map.DeepFlush(4000, data.Length);
            output.WriteLine($"{device.DevicePath} ({device.Major}:{device.Minor}): {result}; region path {result.RegionPath}");
            AssertRegion0ReadOnly(result, device.Region!.ResolvedPath);
            Assert.Same(result, map.DeepFlush(0, 0));
            Assert.Throws<ArgumentOutOfRangeException>(() => map.DeepFlush(TwoMiB - 10, 11));
        }
        using DaxMapping again = device.Map(new DaxMappingOptions { Offset = offset, Length = TwoMiB, ReadOnly = true });
        Assert.Equal(data, again.GetReadOnlySpan(4000, data.Length).ToArray());
    }

    [Fact]
    public void Deep_flush_of_a_file_on_the_dax_mount_finds_region0_through_dev_block_of_its_file_system()
    {
        string dir = IntegrationEnvironment.RequireFsDaxDirectory();
        string path = IntegrationEnvironment.NewFile(dir, "deep-flush");
        try
        {
            byte[] data = FileSystemDaxTests.Pattern(3000, seed: 78);
            using DaxDevice device = DaxDevice.Open(IntegrationEnvironment.RequireDevice());
            using (PmemFile file = PmemFile.Create(path, TwoMiB))
            using (DaxMapping map = file.Map())
            {
                Assert.Equal(MappingBacking.FsDaxFile, map.Backing);
                data.CopyTo(map.GetSpan(64, data.Length));
                DeepFlushResult result = map.DeepFlush(64, data.Length);
                output.WriteLine($"{path} ({map.Backing}, {map.Granularity}): {result}");
                AssertRegion0ReadOnly(result, device.Region!.ResolvedPath);
            }
            using PmemFile reopened = PmemFile.Open(path, writable: false);
            using DaxMapping view = reopened.Map(new DaxMappingOptions { ReadOnly = true });
            Assert.Equal(data, view.GetReadOnlySpan(64, data.Length).ToArray());
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Deep_flush_of_a_page_cache_file_on_the_sector_namespace_msyncs_and_finds_region0()
    {
        string dir = IntegrationEnvironment.RequirePageCacheDirectory();
        string path = IntegrationEnvironment.NewFile(dir, "deep-flush");
        try
        {
            using DaxDevice device = DaxDevice.Open(IntegrationEnvironment.RequireDevice());
            using PmemFile file = PmemFile.Create(path, 64 * 1024);
            using DaxMapping map = file.Map();
            Assert.Equal(MappingBacking.PageCacheFile, map.Backing);
            map.GetSpan(5000, 100).Fill(0xA5);
            DeepFlushResult result = map.DeepFlush(5000, 100);
            output.WriteLine($"{path} ({map.Backing}, {map.Granularity}): {result}");
            AssertRegion0ReadOnly(result, device.Region!.ResolvedPath);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static void AssertRegion0ReadOnly(DeepFlushResult result, string regionPath)
    {
        Assert.Equal(DeepFlushOutcome.AttributeReadOnly, result.Outcome);
        Assert.False(result.QueuesFlushed);
        Assert.Equal("region0", result.Region);
        Assert.Equal(regionPath, result.RegionPath);
        Assert.Equal(Path.Combine(regionPath, "deep_flush"), result.AttributePath);
    }
}
