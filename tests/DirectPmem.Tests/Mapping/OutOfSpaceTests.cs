using DirectPmem.Interop;
using DirectPmem.Mapping;
using DirectPmem.Persistence;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Mapping;

/// <summary>
/// Issue 11, item 4: no SIGBUS from running out of space. A writable map allocates the blocks of
/// its range first, so a sparse file on a full file system is refused with a typed error that says
/// so; truncation under a live page-cache mapping is reported at Persist.
/// </summary>
public sealed class OutOfSpaceTests
{
    private const long Mib = 1 << 20;

    [Fact]
    public void MappingASparseFileThatDoesNotFitIsRefusedWithOutOfSpaceAndNoSignal()
    {
        using SmallTmpfs fs = SmallTmpfs.Mount("512k");
        string path = fs.File("sparse");
        using (FileStream stream = File.Create(path))
        {
            stream.SetLength(4 * Mib); // sparse: no blocks yet
        }
        using (PmemFile file = PmemFile.Open(path))
        {
            var e = Assert.Throws<PmemOutOfSpaceException>(() => file.Map());
            Assert.Contains("No space left for the file's blocks", e.Message, StringComparison.Ordinal);
            Assert.Contains(path, e.Message, StringComparison.Ordinal);
            Assert.Equal("fallocate", e.Call);

            // A range that fits is allocated and usable; reading a hole never needs a block.
            using DaxMapping small = file.Map(new DaxMappingOptions { Length = 256 << 10 });
            small.Fill(0, 256 << 10, 0x11);
            small.Persist(0, 256 << 10);
        }
        using PmemFile reader = PmemFile.Open(path, writable: false);
        using DaxMapping readOnly = reader.Map(new DaxMappingOptions { ReadOnly = true });
        Assert.Equal(0x11, readOnly.GetReadOnlySpan(0, 1)[0]);
        Assert.Equal(0, readOnly.GetReadOnlySpan(3 * Mib, 1)[0]);
    }

    [Fact]
    public void CreatingAFileThatDoesNotFitIsRefusedWithOutOfSpaceAndRemovesIt()
    {
        using SmallTmpfs fs = SmallTmpfs.Mount("512k");
        string path = fs.File("big");
        var e = Assert.Throws<PmemOutOfSpaceException>(() => PmemFile.Create(path, 4 * Mib));
        Assert.Contains("No space left for the file's blocks", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void AnEmulatedDeviceThatDoesNotFitIsRefusedWithOutOfSpace()
    {
        using SmallTmpfs fs = SmallTmpfs.Mount("512k");
        Assert.Throws<PmemOutOfSpaceException>(() => DirectPmem.Driver.DaxDevice.CreateEmulated(fs.File("dev"), 4 * Mib, DirectPmem.Geometry.PageSize.Pte));
    }

    [Fact]
    public void TruncationUnderALivePageCacheMappingIsReportedAtPersist()
    {
        using TempDirectory dir = PageCacheDirectory.Create();
        string path = dir.File("truncated");
        using PmemFile file = PmemFile.Create(path, 2 * Mib);
        using DaxMapping map = file.Map();
        Assert.Equal(PersistGranularity.Page, map.Granularity);
        map.GetSpan(0, 4096).Fill(1);
        map.Persist(0, 4096);

        // Another program truncates the file (flock is advisory): the next persist says so.
        int fd = Libc.Open(path, Libc.O_RDWR | Libc.O_CLOEXEC, 0);
        Assert.True(fd >= 0);
        try
        {
            Assert.Equal(0, Libc.FTruncate(fd, 4096));
        }
        finally
        {
            Libc.Close(fd);
        }
        map.Persist(0, 4096); // still inside the file
        var e = Assert.Throws<PmemException>(() => map.Persist(Mib, 4096));
        Assert.Contains("truncated to 4096 bytes", e.Message, StringComparison.Ordinal);
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AnEmulatedDeviceWhoseFileWasTruncatedRefusesToMapThePagesItLost()
    {
        using TempDirectory dir = PageCacheDirectory.Create();
        string path = dir.File("dev");
        using DirectPmem.Driver.DaxDevice device = DirectPmem.Driver.DaxDevice.CreateEmulated(path, 8 * Mib, DirectPmem.Geometry.PageSize.Pmd);
        int fd = Libc.Open(path, Libc.O_RDWR | Libc.O_CLOEXEC, 0);
        Assert.True(fd >= 0);
        try
        {
            Assert.Equal(0, Libc.FTruncate(fd, 2 * Mib)); // another program ignores the advisory lock
        }
        finally
        {
            Libc.Close(fd);
        }
        using (DaxMapping first = device.Map(new DaxMappingOptions { Length = 2 * Mib }))
        {
            first.Persist(0, 4096);
        }
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => device.Map());
        Assert.Contains("holds only 2097152 bytes now", e.Message, StringComparison.Ordinal);
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
    }
}
