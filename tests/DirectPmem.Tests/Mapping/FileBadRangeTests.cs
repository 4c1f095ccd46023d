using DirectPmem.Geometry;
using DirectPmem.Interop;
using DirectPmem.Mapping;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Mapping;

/// <summary>
/// A file's bad ranges: a pmem disk is built in a temporary sysfs tree for the device the test file
/// lives on (dev/block/MAJ:MIN), its <c>badblocks</c> names sectors under the file's real extents
/// (FIEMAP), and the file, a mapping of it and the clear path must place them at exact file offsets.
/// </summary>
public sealed class FileBadRangeTests : IDisposable
{
    private const long FileSize = 256 * 1024;
    private readonly TempDirectory _sys = new();
    private readonly TempDirectory _data = PageCacheDirectory.Create();

    public void Dispose()
    {
        _sys.Dispose();
        _data.Dispose();
    }

    private static unsafe (uint Major, uint Minor) DeviceOf(string path)
    {
        Libc.Stat st;
        Assert.Equal(0, Libc.StatPath(path, &st));
        return (Libc.Major(st.st_dev), Libc.Minor(st.st_dev));
    }

    /// <summary>A file with its blocks allocated and written, and the block-device byte offset of its first extent (skips where FIEMAP is missing).</summary>
    private (PmemFile File, FileExtent First) CreateFile()
    {
        string path = _data.File("pool");
        PmemFile file = PmemFile.Create(path, FileSize);
        using (DaxMapping map = file.Map())
        {
            map.GetSpan(0, (int)FileSize).Fill(0x5A);
            map.Persist(0, FileSize);
        }
        var extents = new List<FileExtent>();
        int errno = FileExtents.Read(file.Handle.Fd, FileSize, extents);
        if (errno != 0 || extents.Count == 0 || !extents[0].HasPhysicalAddress || extents[0].Length < 64 * 1024 || extents[0].Logical != 0)
        {
            file.Dispose();
            Assert.Skip($"FIEMAP on '{path}' gives no usable first extent of 64 KiB (errno {Errno.Name(errno)}, {extents.Count} extents): the file system cannot place blocks");
        }
        return (file, extents[0]);
    }

    /// <summary>devices/.../ndbus0/region0/pfn0.0/block/pmem0 (and pmem0p1 when partitioned), linked from dev/block/MAJ:MIN of <paramref name="file"/>.</summary>
    private string Disk(PmemFile file, string badblocks, long? partitionStartSectors = null, long diskSectors = -1)
    {
        (uint major, uint minor) = DeviceOf(file.Path);
        string region = Path.Combine(_sys.Path, "devices", "LNXSYSTM:00", "ACPI0012:00", "ndbus0", "region0");
        string disk = Path.Combine(region, "pfn0.0", "block", "pmem0");
        Directory.CreateDirectory(disk);
        Directory.CreateDirectory(Path.Combine(_sys.Path, "bus", "nd"));
        File.CreateSymbolicLink(Path.Combine(region, "subsystem"), "../../../../bus/nd");
        File.WriteAllText(Path.Combine(disk, "size"), (diskSectors >= 0 ? diskSectors : long.MaxValue / 1024).ToString(System.Globalization.CultureInfo.InvariantCulture) + "\n");
        File.WriteAllText(Path.Combine(disk, "badblocks"), badblocks);
        string device = disk;
        if (partitionStartSectors is long start)
        {
            device = Path.Combine(disk, "pmem0p1");
            Directory.CreateDirectory(device);
            File.WriteAllText(Path.Combine(device, "partition"), "1\n");
            File.WriteAllText(Path.Combine(device, "start"), start.ToString(System.Globalization.CultureInfo.InvariantCulture) + "\n");
        }
        DevBlockLink(major, minor, device);
        return device;
    }

    /// <summary>dev/block/MAJ:MIN as a relative link to <paramref name="device"/>, as the kernel lays it out.</summary>
    private void DevBlockLink(uint major, uint minor, string device)
    {
        string dir = Path.Combine(_sys.Path, "dev", "block");
        Directory.CreateDirectory(dir);
        File.CreateSymbolicLink(Path.Combine(dir, $"{major}:{minor}"), Path.GetRelativePath(dir, device));
    }

    // Through a mapping: the file holds DirectPmem's exclusive lock, which File.ReadAllBytes's shared flock would wait for.
    private static byte[] Contents(PmemFile file)
    {
        using DaxMapping map = file.Map(new DaxMappingOptions { ReadOnly = true });
        return map.GetReadOnlySpan(0, (int)map.Length).ToArray();
    }

    private static string Sector(long bytes, int count) => $"{bytes / 512} {count}\n";

    [Fact]
    public void DiskBadBlocksUnderTheFilesExtentsAreReportedAtExactFileOffsets()
    {
        (PmemFile file, FileExtent first) = CreateFile();
        using (file)
        {
            // 8 sectors 4 KiB into the file, one 512-byte sector 40 KiB in, and sector 0 of the disk (not the file's).
            Disk(file, "0 1\n" + Sector(first.Physical + 4096, 8) + Sector(first.Physical + 40960, 1));
            BadRangeReport report = file.GetBadRanges(_sys.Path);
            Assert.Equal(BadRangeCoverage.Complete, report.Coverage);
            Assert.Equal([new PmemRange(4096, 4096), new PmemRange(40960, 512)], report.Ranges);
            Assert.Contains("pmem0/badblocks in region0: 3 range(s)", report.Detail, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void APartitionsStartIsAddedBeforeTheDisksListIsMatched()
    {
        (PmemFile file, FileExtent first) = CreateFile();
        using (file)
        {
            const long Start = 2048;
            Disk(file, Sector(first.Physical + (Start * 512) + 8192, 8), partitionStartSectors: Start);
            BadRangeReport report = file.GetBadRanges(_sys.Path);
            Assert.Equal(BadRangeCoverage.Complete, report.Coverage);
            Assert.Equal([new PmemRange(8192, 4096)], report.Ranges);
            Assert.Contains("partition's start (sector 2048)", report.Detail, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AMappingReadsTheFilesListAfterThePmemFileIsDisposed(bool forceCacheLine)
    {
        // What `dpmem check` does: it keeps the mapping and disposes the file. A cache-line mapping (a
        // DAX file's, or a forced one) holds no page-granularity msync descriptor, so only the
        // mapping's own reference keeps the list readable (it threw ObjectDisposedException on fsdax).
        (PmemFile file, FileExtent first) = CreateFile();
        Disk(file, Sector(first.Physical + 8192, 16));
        file.SysfsRoot = _sys.Path;
        DaxMapping map = file.Map(new DaxMappingOptions { ReadOnly = true, ForceCacheLineGranularity = forceCacheLine });
        file.Dispose();
        using (map)
        {
            Assert.Equal(forceCacheLine ? DirectPmem.Persistence.PersistGranularity.CacheLine : DirectPmem.Persistence.PersistGranularity.Page, map.Granularity);
            BadRangeReport report = map.GetBadRanges();
            Assert.Equal(BadRangeCoverage.Complete, report.Coverage);
            Assert.Equal([new PmemRange(8192, 8192)], report.Ranges);
        }
        Assert.Throws<ObjectDisposedException>(() => map.GetBadRanges());
    }

    [Fact]
    public void AMappingReportsTheFilesRangesInItsOwnOffsets()
    {
        (PmemFile file, FileExtent first) = CreateFile();
        using (file)
        {
            Disk(file, Sector(first.Physical + 8192, 16));
            file.SysfsRoot = _sys.Path;
            using DaxMapping map = file.Map(new DaxMappingOptions { Offset = 4096, Length = 16384, ReadOnly = true });
            BadRangeReport report = map.GetBadRanges();
            Assert.Equal(BadRangeCoverage.Complete, report.Coverage);
            Assert.Equal([new PmemRange(4096, 8192)], report.Ranges);
            using DaxMapping after = file.Map(new DaxMappingOptions { Offset = 16384, Length = 4096, ReadOnly = true });
            Assert.True(after.GetBadRanges().IsKnownClean);
        }
    }

    [Fact]
    public void AnEmptyDiskListIsCompleteWithoutReadingExtents()
    {
        (PmemFile file, _) = CreateFile();
        using (file)
        {
            Disk(file, "");
            BadRangeReport report = file.GetBadRanges(_sys.Path);
            Assert.Equal(BadRangeCoverage.Complete, report.Coverage);
            Assert.True(report.IsKnownClean);
        }
    }

    [Theory]
    [InlineData("1 2 3")]
    [InlineData("x 8")]
    [InlineData("0 0")]
    public void AGarbledDiskListIsUnknown(string text)
    {
        (PmemFile file, _) = CreateFile();
        using (file)
        {
            Disk(file, text);
            BadRangeReport report = file.GetBadRanges(_sys.Path);
            Assert.Equal(BadRangeCoverage.Unknown, report.Coverage);
            Assert.Empty(report.Ranges);
            Assert.Contains("not trusted", report.Detail, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void ADiskEntryPastTheDisksSizeIsUnknown()
    {
        (PmemFile file, _) = CreateFile();
        using (file)
        {
            Disk(file, "2048 8\n", diskSectors: 1024);
            Assert.Equal(BadRangeCoverage.Unknown, file.GetBadRanges(_sys.Path).Coverage);
        }
    }

    [Theory]
    [InlineData("4096", "many")]
    [InlineData("lots", "0")]
    [InlineData("1024", "1024")]
    [InlineData("0", "0")]
    public void APartitionOrDiskSizeThatIsNotANumberInsideTheDiskIsUnknown(string size, string start)
    {
        (PmemFile file, _) = CreateFile();
        using (file)
        {
            string partition = Disk(file, "8 8\n", partitionStartSectors: 0);
            File.WriteAllText(Path.Combine(partition, "start"), start);
            File.WriteAllText(Path.Combine(Path.GetDirectoryName(partition)!, "size"), size);
            BadRangeReport report = file.GetBadRanges(_sys.Path);
            Assert.Equal(BadRangeCoverage.Unknown, report.Coverage);
        }
    }

    [Fact]
    public void AStackedBlockDeviceIsUnknownNotClean()
    {
        (PmemFile file, _) = CreateFile();
        using (file)
        {
            string device = Disk(file, "8 8\n");
            Directory.CreateDirectory(Path.Combine(device, "slaves", "pmem1"));
            BadRangeReport report = file.GetBadRanges(_sys.Path);
            Assert.Equal(BadRangeCoverage.Unknown, report.Coverage);
            Assert.Contains("stacked", report.Detail, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void ASectorModeNamespaceIsUnknownNotClean()
    {
        using PmemFile file = PmemFile.Create(_data.File("btt"), 4096);
        (uint major, uint minor) = DeviceOf(file.Path);
        string region = Path.Combine(_sys.Path, "devices", "ndbus0", "region0");
        string disk = Path.Combine(region, "btt0.1", "block", "pmem0.2s");
        Directory.CreateDirectory(disk);
        Directory.CreateDirectory(Path.Combine(_sys.Path, "bus", "nd"));
        File.CreateSymbolicLink(Path.Combine(region, "subsystem"), "../../../bus/nd");
        File.WriteAllText(Path.Combine(disk, "badblocks"), "\n");
        DevBlockLink(major, minor, disk);
        BadRangeReport report = file.GetBadRanges(_sys.Path);
        Assert.Equal(BadRangeCoverage.Unknown, report.Coverage);
        Assert.Contains("sector-mode (BTT)", report.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void ABlockDeviceOutsideEveryRegionHasNoList()
    {
        using PmemFile file = PmemFile.Create(_data.File("plain"), 4096);
        (uint major, uint minor) = DeviceOf(file.Path);
        string disk = Path.Combine(_sys.Path, "devices", "pci0000:00", "block", "sda");
        Directory.CreateDirectory(disk);
        DevBlockLink(major, minor, disk);
        BadRangeReport report = file.GetBadRanges(_sys.Path);
        Assert.Equal(BadRangeCoverage.NoBadBlockList, report.Coverage);
        Assert.Contains("not on an NVDIMM region", report.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void ADeviceUnknownToSysfsHasNoList()
    {
        using PmemFile file = PmemFile.Create(_data.File("plain"), 4096);
        BadRangeReport report = file.GetBadRanges(_sys.Path);
        Assert.Equal(BadRangeCoverage.NoBadBlockList, report.Coverage);
        Assert.True(report.IsKnownClean);
    }

    [Fact]
    public void MemoryHasNoList()
    {
        using PmemFile memory = PmemFile.CreateMemory("badblocks", 4096);
        Assert.Equal(BadRangeCoverage.NoBadBlockList, memory.GetBadRanges().Coverage);
        using DaxMapping anonymous = DaxMapping.CreateAnonymous(4096);
        Assert.Equal(BadRangeCoverage.NoBadBlockList, anonymous.GetBadRanges().Coverage);
    }

    [Fact]
    public void AMappingOutlivesItsClosedFileAndADisposedOneRefusesToReport()
    {
        PmemFile file = PmemFile.Create(_data.File("closed"), 4096);
        DaxMapping map = file.Map();
        file.Dispose();
        // The mapping keeps the descriptor open (as it keeps the lock): its list can still be read.
        Assert.NotEqual(BadRangeCoverage.Unknown, map.GetBadRanges().Coverage);
        map.Dispose();
        Assert.Throws<ObjectDisposedException>(map.GetBadRanges);
        Assert.Throws<ObjectDisposedException>(() => file.GetBadRanges());
    }

    [Fact]
    public void ClearBadRangesRewritesEveryListedPageAndReportsWhatTheKernelStillLists()
    {
        (PmemFile file, FileExtent first) = CreateFile();
        using (file)
        {
            // One 512-byte sector 4.5 KiB into the file: the whole page [4 KiB, 8 KiB) is rewritten.
            Disk(file, Sector(first.Physical + 4608, 1));
            IReadOnlyList<PoisonClearResult> results = file.ClearBadRanges(_sys.Path);
            PoisonClearResult result = Assert.Single(results);
            Assert.Equal(new PmemRange(4096, 4096), result.Range);
            Assert.Equal(PoisonClearMethod.RecoveryWrite, result.Method);
            // The fixture's list does not change when the range is rewritten: the result says so instead of pretending.
            Assert.Equal([new PmemRange(4608, 512)], result.StillListed);
            byte[] bytes = Contents(file);
            Assert.All(bytes.AsSpan(4096, 4096).ToArray(), b => Assert.Equal(0, b));
            Assert.Equal(0x5A, bytes[4095]);
            Assert.Equal(0x5A, bytes[8192]);
        }
    }

    [Fact]
    public void ClearBadRangesRefusesAnUnknownList()
    {
        (PmemFile file, _) = CreateFile();
        using (file)
        {
            Disk(file, "garbage");
            Assert.Throws<InvalidOperationException>(() => file.ClearBadRanges(_sys.Path));
            Assert.Equal(0x5A, Contents(file)[0]);
        }
    }
}
