using System.Globalization;
using DirectPmem.Geometry;
using DirectPmem.Interop;
using DirectPmem.Mapping;
using Xunit;

namespace DirectPmem.Storage.Tests;

/// <summary>
/// Pool open over media errors, on the host without root: a fake pmem disk in a temporary sysfs tree
/// lists bad sectors under the pool file's real extents (FIEMAP), as FileBadRangeTests build it, and a
/// pool file truncated under its mapping makes the header read meet a real SIGBUS (BUS_ADRERR).
/// </summary>
public sealed class PoolBadBlockTests : IDisposable
{
    private const long PoolSize = 256 * 1024;
    private readonly TempDirectory _sys = new();
    private readonly List<IDisposable> _owned = [];

    public void Dispose()
    {
        foreach (IDisposable d in _owned)
        {
            d.Dispose();
        }
        _sys.Dispose();
    }

    /// <summary>A path for a pool in a fresh directory on a page-cache file system (removed on dispose), or a skip saying why there is none.</summary>
    private string NewPoolPath()
    {
        (string? root, string reason) = PageCacheProbe.Found;
        if (root is null)
        {
            Assert.Skip(reason);
        }
        string dir = Path.Combine(root, "directpmem-poolbad-" + Guid.NewGuid().ToString("n"));
        Directory.CreateDirectory(dir);
        _owned.Add(new DirectoryRemover(dir));
        return Path.Combine(dir, "pool");
    }

    /// <summary>A closed pool file on a page-cache file system, and the disk byte offset of its first extent (skips where FIEMAP cannot place it).</summary>
    private (string Path, long Physical) NewPoolFile()
    {
        string path = NewPoolPath();
        using (PmemPool pool = TestPools.CreateFile(path, PoolSize, PoolTests.Layout))
        {
            pool.Mapping.Fill(pool.DataOffset, pool.DataLength, 0x5A);
            pool.Mapping.Persist(0, PoolSize);
        }
        using PmemFile file = PmemFile.Open(path, writable: false);
        var extents = new List<FileExtent>();
        int errno = FileExtents.Read(file.Handle.Fd, PoolSize, extents);
        if (errno != 0 || extents.Count == 0 || !extents[0].HasPhysicalAddress || extents[0].Length < 64 * 1024 || extents[0].Logical != 0)
        {
            Assert.Skip($"FIEMAP on '{path}' gives no usable first extent of 64 KiB (errno {Errno.Name(errno)}, {extents.Count} extents): the file system cannot place blocks");
        }
        return (path, extents[0].Physical);
    }

    private static unsafe (uint Major, uint Minor) DeviceOf(string path)
    {
        Libc.Stat st;
        Assert.Equal(0, Libc.StatPath(path, &st));
        return (Libc.Major(st.st_dev), Libc.Minor(st.st_dev));
    }

    /// <summary>A pmem disk in region0 whose dev/block/MAJ:MIN is the pool file's device, with <paramref name="badblocks"/> (sectors).</summary>
    private void Disk(string file, string badblocks)
    {
        (uint major, uint minor) = DeviceOf(file);
        string region = Path.Combine(_sys.Path, "devices", "LNXSYSTM:00", "ACPI0012:00", "ndbus0", "region0");
        string disk = Path.Combine(region, "pfn0.0", "block", "pmem0");
        Directory.CreateDirectory(disk);
        Directory.CreateDirectory(Path.Combine(_sys.Path, "bus", "nd"));
        File.CreateSymbolicLink(Path.Combine(region, "subsystem"), "../../../../bus/nd");
        File.WriteAllText(Path.Combine(disk, "size"), (long.MaxValue / 1024).ToString(CultureInfo.InvariantCulture) + "\n");
        File.WriteAllText(Path.Combine(disk, "badblocks"), badblocks);
        string dir = Path.Combine(_sys.Path, "dev", "block");
        Directory.CreateDirectory(dir);
        File.CreateSymbolicLink(Path.Combine(dir, $"{major}:{minor}"), Path.GetRelativePath(dir, disk));
    }

    private static string Sector(long bytes, int count) => $"{bytes / 512} {count}\n";

    private PoolOpenOptions Options(PoolBadBlockPolicy policy) => new() { SysfsRoot = _sys.Path, BadBlockPolicy = policy };

    private static byte[] Bytes(string path)
    {
        using PmemFile file = PmemFile.Open(path, writable: false);
        using DaxMapping map = file.Map(new DaxMappingOptions { ReadOnly = true });
        return map.GetReadOnlySpan(0, (int)map.Length).ToArray();
    }

    [Fact]
    public void ABadRangeInTheDataAreaRefusesTheOpenByDefaultNamingItInPoolOffsetsTwice()
    {
        (string path, long physical) = NewPoolFile();
        Disk(path, Sector(physical + 65536, 8));
        byte[] before = Bytes(path);
        for (int attempt = 0; attempt < 2; attempt++)
        {
            PoolMediaErrorException e = Assert.Throws<PoolMediaErrorException>(() => PmemPool.OpenFile(path, PoolTests.Layout, Options(PoolBadBlockPolicy.Refuse)));
            Assert.Equal([new PmemRange(65536, 4096)], e.BadRanges);
            Assert.Contains("[0x10000, +0x1000) (reserved or data area)", e.Message, StringComparison.Ordinal);
            Assert.Null(e.MediaError);
        }
        Assert.Equal(before, Bytes(path));
    }

    [Fact]
    public void ABadRangeOverThePrimaryHeaderIsNamedAsSuch()
    {
        (string path, long physical) = NewPoolFile();
        Disk(path, Sector(physical, 1));
        PoolMediaErrorException e = Assert.Throws<PoolMediaErrorException>(() => PmemPool.OpenFile(path, PoolTests.Layout, Options(PoolBadBlockPolicy.Refuse)));
        Assert.Equal([new PmemRange(0, 512)], e.BadRanges);
        Assert.Contains("(primary header)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OpenReadOnlyOverABadPrimaryHeaderReadsTheBackupReportsTheRepairAndWritesNothing()
    {
        (string path, long physical) = NewPoolFile();
        Disk(path, Sector(physical, 8) + Sector(physical + 65536, 8));
        byte[] before = Bytes(path);
        using (PmemPool pool = PmemPool.OpenFile(path, PoolTests.Layout, Options(PoolBadBlockPolicy.OpenReadOnly)))
        {
            Assert.True(pool.IsReadOnly);
            Assert.Contains("OpenReadOnly", pool.ReadOnlyReason, StringComparison.Ordinal);
            Assert.Equal(PoolHeaderRepair.PrimaryRestoredFromBackup, pool.HeaderRepair);
            Assert.Equal([new PmemRange(0, 4096), new PmemRange(65536, 4096)], pool.KnownBadRanges);
            Assert.Equal(BadRangeCoverage.Complete, pool.BadRangeCoverage);
            Assert.True(pool.WasCleanlyClosed);
            Assert.Throws<InvalidOperationException>(() => pool.SetRoot(pool.DataOffset));
        }
        Assert.Equal(before, Bytes(path));
    }

    [Fact]
    public void ProceedOverABadBackupHeaderOpensReadOnlyNamingTheRangeAndNeverStoresIntoIt()
    {
        // A store into a listed bad range ends the process on real media (SIGBUS), and every later
        // open would do the same: the lost copy is never rewritten while the range is listed.
        (string path, long physical) = NewPoolFile();
        Disk(path, Sector(physical + 4096, 8));
        byte[] before = Bytes(path);
        for (int open = 0; open < 2; open++)
        {
            using PmemPool pool = PmemPool.OpenFile(path, PoolTests.Layout, Options(PoolBadBlockPolicy.Proceed));
            Assert.True(pool.IsReadOnly);
            Assert.Contains("the backup header (offset 4096)", pool.ReadOnlyReason, StringComparison.Ordinal);
            Assert.Contains("Clear the range", pool.ReadOnlyReason, StringComparison.Ordinal);
            Assert.Equal(PoolHeaderRepair.BackupRestoredFromPrimary, pool.HeaderRepair);
            Assert.Equal([new PmemRange(4096, 4096)], pool.KnownBadRanges);
            Assert.Throws<InvalidOperationException>(() => pool.SetRoot(pool.DataOffset));
        }
        Assert.Equal(before, Bytes(path));

        // Once the range is no longer listed, the open is writable again; the fixture's listed range never
        // damaged the bytes, so both copies read intact and nothing needs restoring.
        File.WriteAllText(Path.Combine(_sys.Path, "devices", "LNXSYSTM:00", "ACPI0012:00", "ndbus0", "region0", "pfn0.0", "block", "pmem0", "badblocks"), "");
        using (PmemPool pool = PmemPool.OpenFile(path, PoolTests.Layout, Options(PoolBadBlockPolicy.Proceed)))
        {
            Assert.False(pool.IsReadOnly);
            Assert.Equal(PoolHeaderRepair.None, pool.HeaderRepair);
            pool.SetRoot(pool.DataOffset);
        }
        byte[] after = Bytes(path);
        Assert.Equal(after.AsSpan(0, 4096).ToArray(), after.AsSpan(4096, 4096).ToArray());
    }

    [Fact]
    public void BothHeadersInBadRangesFailNamingBothOffsetsWhateverThePolicy()
    {
        (string path, long physical) = NewPoolFile();
        Disk(path, Sector(physical, 16));
        byte[] before = Bytes(path);
        foreach (PoolBadBlockPolicy policy in new[] { PoolBadBlockPolicy.OpenReadOnly, PoolBadBlockPolicy.Proceed })
        {
            PoolMediaErrorException e = Assert.Throws<PoolMediaErrorException>(() => PmemPool.OpenFile(path, PoolTests.Layout, Options(policy)));
            Assert.Equal([new PmemRange(0, 4096), new PmemRange(4096, 4096)], e.BadRanges);
            Assert.Contains("offset 0)", e.Message, StringComparison.Ordinal);
            Assert.Contains("offset 4096)", e.Message, StringComparison.Ordinal);
        }
        Assert.Equal(before, Bytes(path));
    }

    [Fact]
    public void ABadRangeOutsideThePoolFileOpensNormally()
    {
        (string path, long physical) = NewPoolFile();
        // A sector of the disk before the file's first block, or far past it: neither is the pool's.
        Disk(path, physical >= 512 ? Sector(physical - 512, 1) : Sector(physical + (1L << 40), 1));
        using PmemPool pool = PmemPool.OpenFile(path, PoolTests.Layout, Options(PoolBadBlockPolicy.Refuse));
        Assert.Empty(pool.KnownBadRanges);
        Assert.Equal(BadRangeCoverage.Complete, pool.BadRangeCoverage);
        Assert.Equal(PoolHeaderRepair.None, pool.HeaderRepair);
        Assert.False(pool.IsReadOnly);
    }

    [Fact]
    public void AnUnreadableBadBlockListDoesNotStopTheOpenAndTheCoverageSaysUnknown()
    {
        (string path, _) = NewPoolFile();
        Disk(path, "x 8\n");
        using PmemPool pool = PmemPool.OpenFile(path, PoolTests.Layout, Options(PoolBadBlockPolicy.Refuse));
        Assert.Equal(BadRangeCoverage.Unknown, pool.BadRangeCoverage);
        Assert.Empty(pool.KnownBadRanges);
        Assert.False(pool.IsReadOnly);
    }

    [Fact]
    public void APoolWithNoBadBlockListOpensNormallyAndSaysSo()
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(64 * 1024);
        TestPools.Create(mapping, PoolTests.Layout).Dispose();
        using PmemPool pool = PmemPool.Open(mapping, PoolTests.Layout);
        Assert.Equal(BadRangeCoverage.NoBadBlockList, pool.BadRangeCoverage);
        Assert.Empty(pool.KnownBadRanges);
        Assert.False(pool.IsReadOnly);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4096)]
    public void APoolFileTruncatedUnderItsMappingFailsTypedAtTheHeaderReadAndTheProcessLives(int keptLength)
    {
        if (!DaxMapping.IsReadSafeSupported)
        {
            Assert.Skip("DaxMapping.ReadSafe is unavailable here (it needs x86-64): without it a header read of a truncated file raises SIGBUS");
        }
        string path = NewPoolPath();
        TestPools.CreateFile(path, PoolSize, PoolTests.Layout).Dispose();
        using PmemFile file = PmemFile.Open(path, writable: true);
        using DaxMapping mapping = file.Map();
        Truncation.Truncate(path, keptLength);
        for (int attempt = 0; attempt < 2; attempt++)
        {
            PoolMediaErrorException e = Assert.Throws<PoolMediaErrorException>(() => PmemPool.Open(mapping, PoolTests.Layout));
            Assert.NotNull(e.MediaError);
            Assert.Equal(MediaErrorKind.BeyondEndOfFile, e.MediaError.Kind);
            Assert.Contains("truncated", e.Message, StringComparison.Ordinal);
            long lost = keptLength == 0 ? 0 : 4096;
            Assert.Contains($"offset {lost})", e.Message, StringComparison.Ordinal);
            Assert.Equal(lost, e.BadRanges[0].Offset);
        }
        Assert.False(mapping.IsDisposed);
    }

    private sealed class DirectoryRemover(string path) : IDisposable
    {
        public void Dispose() => Directory.Delete(path, recursive: true);
    }
}
