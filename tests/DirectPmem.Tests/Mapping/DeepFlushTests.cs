using System.Runtime.InteropServices;
using System.Text;
using DirectPmem.Driver;
using DirectPmem.Interop;
using DirectPmem.Mapping;
using DirectPmem.Tests.Fixtures;
using DirectPmem.Tests.Support;
using Microsoft.Win32.SafeHandles;
using Xunit;

namespace DirectPmem.Tests.Mapping;

/// <summary>
/// <see cref="DaxMapping.DeepFlush"/> (PMDK's <c>pmem2_deep_flush</c>) on sysfs trees built in a
/// temporary directory: the region is found from the device number, a writable <c>deep_flush</c>
/// receives exactly one <c>1</c> per call (it is a FIFO here, so every byte written is counted), a
/// read-only or absent one is never written, a bad range flushes nothing, and a refused write is a
/// typed error after the data was persisted.
/// </summary>
public sealed partial class DeepFlushTests : IDisposable
{
    private const long FileSize = 64 * 1024;
    private readonly TempDirectory _sys = new();

    public void Dispose() => _sys.Dispose();

    private static unsafe (uint Major, uint Minor) DeviceOf(string path)
    {
        Libc.Stat st;
        Assert.Equal(0, Libc.StatPath(path, &st));
        return (Libc.Major(st.st_dev), Libc.Minor(st.st_dev));
    }

    /// <summary>A region directory on an nd bus, as the kernel lays it out: devices/.../ndbus0/regionN with a subsystem link to bus/nd.</summary>
    private string Region(string name)
    {
        string region = Path.Combine(_sys.Path, "devices", "LNXSYSTM:00", "ACPI0012:00", "ndbus0", name);
        Directory.CreateDirectory(region);
        Directory.CreateDirectory(Path.Combine(_sys.Path, "bus", "nd"));
        File.CreateSymbolicLink(Path.Combine(region, "subsystem"), "../../../../bus/nd");
        return region;
    }

    /// <summary>dev/{block,char}/MAJ:MIN as a relative link to <paramref name="device"/> (a directory made under the tree).</summary>
    private void DevLink(string kind, uint major, uint minor, string device)
    {
        Directory.CreateDirectory(device);
        string dir = Path.Combine(_sys.Path, "dev", kind);
        Directory.CreateDirectory(dir);
        File.CreateSymbolicLink(Path.Combine(dir, $"{major}:{minor}"), Path.GetRelativePath(dir, device));
    }

    private static string Fifo(string region, uint mode)
    {
        string path = Path.Combine(region, "deep_flush");
        TestLibc.MakeFifo(path, (UnixFileMode)mode);
        return path;
    }

    /// <summary>The reading end of a FIFO, opened without waiting for a writer; <see cref="Drain"/> returns what was written since.</summary>
    private sealed class FifoReader : IDisposable
    {
        private readonly FileStream _stream;

        public FifoReader(string path)
        {
            int fd = Libc.Open(path, Libc.O_RDONLY | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0);
            Assert.True(fd >= 0, $"open {path}: errno {Marshal.GetLastPInvokeError()}");
            _stream = new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Read, bufferSize: 0);
        }

        // With no writer left open, read returns what is buffered and then 0 (end of file).
        public string Drain()
        {
            var text = new StringBuilder();
            byte[] buffer = new byte[64];
            int read;
            while ((read = _stream.Read(buffer)) > 0)
            {
                text.Append(Encoding.ASCII.GetString(buffer, 0, read));
            }
            return text.ToString();
        }

        public void Dispose() => _stream.Dispose();
    }

    /// <summary>A page-cache file whose block device the tree puts in <paramref name="region"/> (null: in no region).</summary>
    private (PmemFile File, TempDirectory Data) FileIn(string? region, bool partition = false)
    {
        TempDirectory data = PageCacheDirectory.Create();
        PmemFile file = PmemFile.Create(data.File("pool"), FileSize);
        Assert.Equal(MappingBacking.PageCacheFile, file.Backing);
        (uint major, uint minor) = DeviceOf(file.Path);
        if (region is not null)
        {
            string disk = Path.Combine(region, "namespace7.0", "block", "pmem7");
            DevLink("block", major, minor, partition ? Path.Combine(disk, "pmem7p1") : disk);
        }
        file.SysfsRoot = _sys.Path;
        return (file, data);
    }

    [Fact]
    public void A_writable_deep_flush_is_written_exactly_once_per_call_after_the_range_is_persisted()
    {
        string region = Region("region7");
        string attribute = Fifo(region, 0b110_100_100);
        (PmemFile file, TempDirectory data) = FileIn(region);
        using (data)
        {
            using (file)
            using (FifoReader reader = new(attribute))
            using (DaxMapping map = file.Map())
            {
                for (int call = 0; call < 3; call++)
                {
                    map.GetSpan(100, 4).Fill((byte)(call + 1));
                    DeepFlushResult result = map.DeepFlush(0, 4096);
                    Assert.Equal(DeepFlushOutcome.RegionFlushed, result.Outcome);
                    Assert.True(result.QueuesFlushed);
                    Assert.Equal("region7", result.Region);
                    Assert.Equal(attribute, result.AttributePath);
                    Assert.Equal(Sysfs.TryResolvePath(region), result.RegionPath);
                    Assert.Equal("1", reader.Drain());
                }
                // A zero-length deep flush still flushes the region, once.
                Assert.Same(map.DeepFlush(0, 4096), map.DeepFlush(FileSize, 0));
                Assert.Equal("11", reader.Drain());
            }
            // Persisted (msync of a page-cache file): read through the file once the lock is gone.
            Assert.Equal(3, File.ReadAllBytes(file.Path)[100]);
        }
    }

    [Fact]
    public void A_read_only_deep_flush_is_not_written_even_by_root()
    {
        // Mode 0444, as the kernel shows it on a platform without flush hints. Root passes
        // access(W_OK), but kernfs would refuse the open: the mode decides.
        string region = Region("region7");
        string attribute = Fifo(region, 0b100_100_100);
        (PmemFile file, TempDirectory data) = FileIn(region);
        using (data)
        using (file)
        using (FifoReader reader = new(attribute))
        using (DaxMapping map = file.Map())
        {
            DeepFlushResult result = map.DeepFlush(0, FileSize);
            Assert.Equal(DeepFlushOutcome.AttributeReadOnly, result.Outcome);
            Assert.False(result.QueuesFlushed);
            Assert.Equal("region7", result.Region);
            Assert.Equal(attribute, result.AttributePath);
            Assert.Equal("", reader.Drain());
        }
        Assert.False(NdRegionLocator.IsWritable(attribute));
    }

    [Fact]
    public void A_region_without_deep_flush_persists_only_and_creates_nothing()
    {
        string region = Region("region7");
        (PmemFile file, TempDirectory data) = FileIn(region);
        using (data)
        using (file)
        using (DaxMapping map = file.Map())
        {
            DeepFlushResult result = map.DeepFlush(0, FileSize);
            Assert.Equal(DeepFlushOutcome.AttributeAbsent, result.Outcome);
            Assert.Equal("region7", result.Region);
            Assert.Null(result.AttributePath);
        }
        Assert.False(File.Exists(Path.Combine(region, "deep_flush")));
    }

    [Fact]
    public void A_file_on_a_device_in_no_region_and_anonymous_memory_persist_only()
    {
        // The tree does not know the file's device: a disk, tmpfs, overlay...
        (PmemFile file, TempDirectory data) = FileIn(region: null);
        using (data)
        using (file)
        using (DaxMapping map = file.Map())
        {
            DeepFlushResult result = map.DeepFlush(0, FileSize);
            Assert.Equal(DeepFlushOutcome.NoRegion, result.Outcome);
            Assert.Null(result.Region);
            Assert.Null(result.RegionPath);
            Assert.Null(result.AttributePath);
        }
        using DaxMapping anonymous = DaxMapping.CreateAnonymous(FileSize);
        Assert.Equal(DeepFlushOutcome.NoRegion, anonymous.DeepFlush(0, FileSize).Outcome);
        using PmemFile memfd = PmemFile.CreateMemory("deep-flush", FileSize);
        using DaxMapping shared = memfd.Map();
        Assert.Equal(DeepFlushOutcome.NoRegion, shared.DeepFlush(4096, 4096).Outcome);
    }

    [Theory]
    [InlineData(-1L, 10L)]
    [InlineData(0L, FileSize + 1)]
    [InlineData(FileSize, 1L)]
    [InlineData(4096L, -1L)]
    [InlineData(long.MaxValue, 2L)]
    public void A_range_outside_the_mapping_is_refused_before_anything_is_flushed(long offset, long length)
    {
        string region = Region("region7");
        string attribute = Fifo(region, 0b110_100_100);
        (PmemFile file, TempDirectory data) = FileIn(region);
        using (data)
        using (file)
        using (FifoReader reader = new(attribute))
        using (DaxMapping map = file.Map())
        {
            var error = Assert.Throws<ArgumentOutOfRangeException>(() => map.DeepFlush(offset, length));
            Assert.Contains($"offset 0x{offset:x} length 0x{length:x}", error.Message, StringComparison.Ordinal);
            Assert.Contains($"mapping of 0x{FileSize:x} bytes", error.Message, StringComparison.Ordinal);
            Assert.Equal("", reader.Drain());
            map.Dispose();
            Assert.Throws<ObjectDisposedException>(() => map.DeepFlush(0, 4096));
            Assert.Equal("", reader.Drain());
        }
    }

    [Fact]
    public void A_deep_flush_the_kernel_refuses_to_open_is_a_typed_error_naming_the_attribute_and_errno_and_loses_nothing()
    {
        // A FIFO nobody reads: the non-blocking open fails with ENXIO instead of hanging.
        string region = Region("region7");
        string attribute = Fifo(region, 0b110_100_100);
        (PmemFile file, TempDirectory data) = FileIn(region);
        using (data)
        {
            using (file)
            using (DaxMapping map = file.Map())
            {
                map.GetSpan(8, 3).Fill(0x5A);
                var error = Assert.Throws<PmemException>(() => map.DeepFlush(0, 4096));
                Assert.Equal("open(O_WRONLY) of deep_flush", error.Call);
                Assert.Equal("ENXIO", error.ErrnoName);
                Assert.Equal(attribute, error.Path);
                Assert.Contains(attribute, error.Message, StringComparison.Ordinal);
                Assert.Contains("persisted", error.Message, StringComparison.Ordinal);
                // The mapping stays usable.
                map.Persist(0, 4096);
            }
            // Nothing lost: the data was persisted before the attribute was tried.
            Assert.Equal(0x5A, File.ReadAllBytes(file.Path)[8]);
        }
    }

    [Fact]
    public void A_write_the_kernel_refuses_is_a_typed_error_naming_the_call_and_errno()
    {
        // /dev/full refuses every write with ENOSPC, as a failing nvdimm_flush refuses with its error.
        string region = Region("region7");
        string attribute = Path.Combine(region, "deep_flush");
        File.CreateSymbolicLink(attribute, "/dev/full");
        (PmemFile file, TempDirectory data) = FileIn(region);
        using (data)
        using (file)
        using (DaxMapping map = file.Map())
        {
            var error = Assert.IsType<PmemOutOfSpaceException>(Assert.ThrowsAny<PmemException>(() => map.DeepFlush(0, 4096)));
            Assert.Equal("write of deep_flush", error.Call);
            Assert.Equal("ENOSPC", error.ErrnoName);
            Assert.Equal(attribute, error.Path);
        }
    }

    [Fact]
    public void The_region_of_a_partition_is_found_by_walking_up_to_its_disk()
    {
        string region = Region("region7");
        string attribute = Fifo(region, 0b110_100_100);
        (PmemFile file, TempDirectory data) = FileIn(region, partition: true);
        using (data)
        using (file)
        using (FifoReader reader = new(attribute))
        using (DaxMapping map = file.Map())
        {
            Assert.Equal("region7", map.DeepFlush(0, 4096).Region);
            Assert.Equal("1", reader.Drain());
        }
    }

    [Fact]
    public void Block_devices_resolve_to_the_nearest_nd_region_above_them_and_to_nothing_outside_one()
    {
        string region = Region("region3");
        DevLink("block", 259, 0, Path.Combine(region, "pfn3.1", "block", "pmem3"));
        DevLink("block", 259, 1, Path.Combine(region, "pfn3.1", "block", "pmem3", "pmem3p1"));
        DevLink("block", 8, 1, Path.Combine(_sys.Path, "devices", "pci0000:00", "0000:00:04.0", "virtio1", "block", "vda", "vda1"));
        // A CXL region is called regionN too, but it is not on the nd bus; the nd region below it is the one.
        string cxl = Path.Combine(_sys.Path, "devices", "platform", "ACPI0017:00", "root0", "decoder0.0", "region0");
        Directory.CreateDirectory(cxl);
        Directory.CreateDirectory(Path.Combine(_sys.Path, "bus", "cxl"));
        File.CreateSymbolicLink(Path.Combine(cxl, "subsystem"), Path.GetRelativePath(cxl, Path.Combine(_sys.Path, "bus", "cxl")));
        string ndUnderCxl = Path.Combine(cxl, "pmem_region0", "ndbus1", "region1");
        Directory.CreateDirectory(ndUnderCxl);
        File.CreateSymbolicLink(Path.Combine(ndUnderCxl, "subsystem"), Path.GetRelativePath(ndUnderCxl, Path.Combine(_sys.Path, "bus", "nd")));
        DevLink("char", 252, 4, Path.Combine(ndUnderCxl, "dax1.0", "dax1.0"));
        DevLink("char", 252, 5, Path.Combine(cxl, "dax_region0", "dax0.0"));

        string resolved = Sysfs.TryResolvePath(region)!;
        Assert.Equal(resolved, NdRegionLocator.FindRegion(_sys.Path, block: true, 259, 0));
        Assert.Equal(resolved, NdRegionLocator.FindRegion(_sys.Path, block: true, 259, 1));
        Assert.Null(NdRegionLocator.FindRegion(_sys.Path, block: true, 8, 1));
        Assert.Null(NdRegionLocator.FindRegion(_sys.Path, block: true, 259, 2));
        Assert.Null(NdRegionLocator.FindRegion(_sys.Path, block: false, 259, 0));
        Assert.Equal(Sysfs.TryResolvePath(ndUnderCxl), NdRegionLocator.FindRegion(_sys.Path, block: false, 252, 4));
        Assert.Null(NdRegionLocator.FindRegion(_sys.Path, block: false, 252, 5));
    }

    [Fact]
    public void Device_dax_devices_of_the_captured_tree_resolve_through_dev_char_to_their_region()
    {
        // The fixture copies a qemu NVDIMM guest's sysfs: dax0.0 is 252:0 in region0 (deep_flush
        // reads 0, made 0644 in the fixture), dax2.0 is in region1 (no deep_flush), dax1.0 is
        // soft-reserved memory in no region, and 1:3 is /dev/null.
        string root = FixturePaths.Sysfs("good");
        var bus = new DaxBus(root);
        DeepFlushControl region0 = Assert.IsType<DeepFlushControl>(bus.GetDevice("dax0.0").RegionDeepFlush);
        Assert.Equal("region0", region0.RegionName);
        Assert.Equal(bus.GetDevice("dax0.0").Region!.ResolvedPath, region0.RegionPath);
        Assert.Equal(Path.Combine(region0.RegionPath, "deep_flush"), region0.AttributePath);
        Assert.Equal(bus.GetDevice("dax0.0").Region!.DeepFlushWritable, region0.Writable);

        DeepFlushControl region1 = Assert.IsType<DeepFlushControl>(bus.GetDevice("dax2.0").RegionDeepFlush);
        Assert.Equal("region1", region1.RegionName);
        Assert.Null(region1.AttributePath);
        Assert.False(region1.Writable);

        Assert.Null(bus.GetDevice("dax1.0").RegionDeepFlush);
        Assert.Null(NdRegionLocator.FindRegion(root, block: false, 1, 3));
    }

    [Fact]
    public void The_region_reader_calls_deep_flush_writable_only_when_its_mode_has_a_write_bit()
    {
        string region = Path.Combine(_sys.Path, "bus", "nd", "devices", "region0");
        Directory.CreateDirectory(region);
        File.WriteAllText(Path.Combine(region, "size"), "8388608\n");
        string attribute = Path.Combine(region, "deep_flush");
        File.WriteAllText(attribute, "0\n");
        File.SetUnixFileMode(attribute, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        Assert.False(Assert.Single(new DaxBus(_sys.Path).GetRegions()).DeepFlushWritable);
        File.SetUnixFileMode(attribute, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        Assert.True(Assert.Single(new DaxBus(_sys.Path).GetRegions()).DeepFlushWritable);
    }
}
