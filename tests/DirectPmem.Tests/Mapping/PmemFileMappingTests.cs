using System.Globalization;
using DirectPmem.Geometry;
using DirectPmem.Internal;
using DirectPmem.Interop;
using DirectPmem.Mapping;
using DirectPmem.Persistence;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Mapping;

public sealed class PmemFileMappingTests : IDisposable
{
    private const long Mib2 = 2 * 1024 * 1024;
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void DataWrittenThroughOneMappingIsReadThroughASecondMappingOfTheSameFile()
    {
        using PmemFile file = PmemFile.Create(_dir.File("a"), 4 * Mib2);
        using DaxMapping first = file.Map();
        using DaxMapping second = file.Map(new DaxMappingOptions { Offset = Mib2, Length = Mib2, PageSize = PageSize.Pmd });

        first.GetSpan(Mib2 + 10, 5).Fill(0xAB);
        first.GetRef<long>(Mib2 + 4096) = 0x0123456789ABCDEF;

        Assert.True(second.GetReadOnlySpan(10, 5).SequenceEqual(new byte[] { 0xAB, 0xAB, 0xAB, 0xAB, 0xAB }));
        Assert.Equal(0x0123456789ABCDEF, second.GetReadOnlyRef<long>(4096));
        Assert.NotEqual(first.AddressOf(), second.AddressOf());
    }

    [Fact]
    public void PersistedDataSurvivesCloseAndReopen()
    {
        // Page granularity needs a page-cache file system; /tmp may be a tmpfs.
        using TempDirectory pageCache = PageCacheDirectory.Create();
        string path = pageCache.File("b");
        byte[] payload = Enumerable.Range(0, 300).Select(i => (byte)(i * 7)).ToArray();
        using (PmemFile file = PmemFile.Create(path, Mib2))
        using (DaxMapping map = file.Map())
        {
            Assert.Equal(PersistGranularity.Page, map.Granularity);
            payload.CopyTo(map.GetSpan(4090, payload.Length));
            map.Persist(4090, payload.Length);
        }
        using (PmemFile file = PmemFile.Open(path, writable: false))
        using (DaxMapping map = file.Map(new DaxMappingOptions { ReadOnly = true }))
        {
            Assert.True(map.GetReadOnlySpan(4090, payload.Length).SequenceEqual(payload));
        }
        // And through the ordinary file API: msync really wrote the page cache to the file.
        Assert.True(File.ReadAllBytes(path).AsSpan(4090, payload.Length).SequenceEqual(payload));
    }

    [Theory]
    [InlineData(PageSize.Pte)]
    [InlineData(PageSize.Pmd)]
    public void TheMappingStartsAtAMultipleOfItsPageSize(PageSize pageSize)
    {
        using PmemFile file = PmemFile.Create(_dir.File("c"), 4 * Mib2);
        for (int i = 0; i < 4; i++)
        {
            using DaxMapping map = file.Map(new DaxMappingOptions { PageSize = pageSize, Length = Mib2 });
            Assert.Equal(0, map.AddressOf() % (long)pageSize);
            Assert.Equal(pageSize, map.PageSize);
        }
    }

    [Fact]
    public void SmapsShowsDontForkForFileMemfdAndAnonymousMappings()
    {
        using PmemFile file = PmemFile.Create(_dir.File("d"), Mib2);
        using PmemFile memfd = PmemFile.CreateMemory("dontfork", Mib2);
        using DaxMapping a = file.Map(new DaxMappingOptions { PageSize = PageSize.Pmd });
        using DaxMapping b = memfd.Map();
        using DaxMapping c = DaxMapping.CreateAnonymous(Mib2);
        foreach (DaxMapping map in new[] { a, b, c })
        {
            PageSizeObservation seen = map.ObservePageSize();
            Assert.True(seen.DontFork, $"{map.Backing}: VmFlags '{seen.VmFlags}' lacks dc");
            Assert.Contains("sh", seen.VmFlags.Split(' '));
        }
    }

    [Theory]
    [InlineData(4096L)]
    [InlineData(Mib2 - 4096)]
    [InlineData(Mib2 + 4096)]
    public void MapRefusesOffsetNotAlignedToThePageSize(long offset)
    {
        using PmemFile file = PmemFile.Create(_dir.File("e"), 8 * Mib2);
        var e = Assert.Throws<ArgumentException>(() => file.Map(new DaxMappingOptions { Offset = offset, Length = Mib2, PageSize = PageSize.Pmd }));
        Assert.Equal("Offset", e.ParamName);
        Assert.Contains("2 MiB", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(4095L)]
    [InlineData(4097L)]
    [InlineData(Mib2 - 1)]
    [InlineData(Mib2 + 1)]
    public void MapRefusesLengthNotAlignedToThePageSize(long length)
    {
        using PmemFile file = PmemFile.Create(_dir.File("f"), 8 * Mib2);
        var e = Assert.Throws<ArgumentException>(() => file.Map(new DaxMappingOptions { Length = length }));
        Assert.Equal("Length", e.ParamName);
    }

    [Fact]
    public void MapRefusesAPageSizeThatIsNotOne()
    {
        using PmemFile file = PmemFile.Create(_dir.File("g"), Mib2);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => file.Map(new DaxMappingOptions { PageSize = (PageSize)65536 }));
        Assert.Equal("PageSize", e.ParamName);
    }

    [Theory]
    [InlineData(0L, 4 * Mib2 + 4096)]
    [InlineData(4 * Mib2, 4096L)]
    [InlineData(2 * Mib2, 3 * Mib2)]
    public void MapRefusesRangesPastTheEndOfTheFile(long offset, long length)
    {
        using PmemFile file = PmemFile.Create(_dir.File("h"), 4 * Mib2);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => file.Map(new DaxMappingOptions { Offset = offset, Length = length }));
        Assert.Equal("Length", e.ParamName);
        Assert.Contains(_dir.File("h"), e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MapRefusesAnEmptyLength()
    {
        using PmemFile file = PmemFile.Create(_dir.File("i"), Mib2);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => file.Map(new DaxMappingOptions { Length = 0 }));
        Assert.Equal("Length", e.ParamName);
        // Offset at the end leaves nothing to map either.
        Assert.Throws<ArgumentOutOfRangeException>(() => file.Map(new DaxMappingOptions { Offset = Mib2 }));
    }

    [Fact]
    public void MapRefusesAFileTruncatedBehindItsBack()
    {
        string path = _dir.File("j");
        using PmemFile file = PmemFile.Create(path, 4 * Mib2, shared: true);
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            stream.SetLength(Mib2);
        }
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => file.Map(new DaxMappingOptions { Length = 2 * Mib2 }));
        Assert.Contains("SIGBUS", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UseAfterDisposeThrowsObjectDisposed()
    {
        using PmemFile file = PmemFile.Create(_dir.File("k"), Mib2);
        DaxMapping map = file.Map();
        map.Dispose();
        Assert.Throws<ObjectDisposedException>(() => map.GetSpan(0, 1));
        Assert.Throws<ObjectDisposedException>(() => map.GetReadOnlySpan(0, 8));
        Assert.Throws<ObjectDisposedException>(() => map.GetRef<long>(0));
        Assert.Throws<ObjectDisposedException>(() => map.GetMemory(0, 1));
        Assert.Throws<ObjectDisposedException>(() => map.Persist(0, 1));
        Assert.Throws<ObjectDisposedException>(() => map.AddressOf());
        Assert.Throws<ObjectDisposedException>(() => map.ObservePageSize());
        Assert.Equal(0, map.Length);
        Assert.True(map.IsDisposed);

        file.Dispose();
        Assert.Throws<ObjectDisposedException>(() => file.Map());
    }

    [Fact]
    public void DisposeIsIdempotentAndThreadSafe()
    {
        using PmemFile file = PmemFile.Create(_dir.File("l"), Mib2);
        for (int round = 0; round < 20; round++)
        {
            DaxMapping map = file.Map();
            Parallel.For(0, 8, _ => map.Dispose());
            map.Dispose();
            Assert.True(map.IsDisposed);
        }
    }

    [Fact]
    public void AReadOnlyMappingNeverHandsOutWritableMemory()
    {
        string path = _dir.File("m");
        PmemFile.Create(path, Mib2).Dispose();
        using PmemFile file = PmemFile.Open(path, writable: false);
        using DaxMapping map = file.Map(new DaxMappingOptions { ReadOnly = true });
        Assert.True(map.IsReadOnly);
        Assert.Throws<InvalidOperationException>(() => map.GetSpan(0, 1));
        Assert.Throws<InvalidOperationException>(() => map.GetRef<int>(0));
        Assert.Throws<InvalidOperationException>(() => map.GetMemory(0, 1));
        Assert.Equal(0, map.GetReadOnlyRef<int>(0));
        Assert.Equal(16, map.GetReadOnlyMemory(0, 16).Length);
        Assert.Contains("r--s", ReadMapsLine(map.AddressOf()));
    }

    [Fact]
    public void MappingAReadOnlyFileWritableIsRefused()
    {
        string path = _dir.File("n");
        PmemFile.Create(path, Mib2).Dispose();
        using PmemFile file = PmemFile.Open(path, writable: false);
        Assert.Throws<InvalidOperationException>(() => file.Map());
    }

    [Theory]
    [InlineData(-1L, 1)]
    [InlineData(0L, -1)]
    [InlineData(Mib2 - 1, 2)]
    [InlineData(Mib2, 1)]
    [InlineData(Mib2 + 1, 0)]
    [InlineData(long.MaxValue, 1)]
    [InlineData(long.MinValue, 1)]
    [InlineData(1L, int.MaxValue)]
    public void SpansOutsideTheMappingAreRefused(long offset, int length)
    {
        using PmemFile file = PmemFile.Create(_dir.File("o"), Mib2);
        using DaxMapping map = file.Map();
        Assert.Throws<ArgumentOutOfRangeException>(() => map.GetSpan(offset, length));
        Assert.Throws<ArgumentOutOfRangeException>(() => map.GetReadOnlySpan(offset, length));
    }

    [Fact]
    public void SpansAtTheEdgesAreAllowed()
    {
        using PmemFile file = PmemFile.Create(_dir.File("p"), Mib2);
        using DaxMapping map = file.Map();
        Assert.Equal(0, map.GetSpan(Mib2, 0).Length);
        Assert.Equal(1, map.GetSpan(Mib2 - 1, 1).Length);
        Assert.Equal((int)Mib2, map.GetSpan(0, (int)Mib2).Length);
        map.GetRef<long>(Mib2 - 8) = -1;
        Assert.Throws<ArgumentOutOfRangeException>(() => map.GetRef<long>(Mib2 - 4));
    }

    [Theory]
    [InlineData(1L)]
    [InlineData(4L)]
    [InlineData(12L)]
    public void GetRefRefusesOffsetsNotAlignedForTheType(long offset)
    {
        using PmemFile file = PmemFile.Create(_dir.File("q"), Mib2);
        using DaxMapping map = file.Map();
        var e = Assert.Throws<ArgumentException>(() => map.GetRef<long>(offset));
        Assert.Equal("offset", e.ParamName);
        Assert.Contains("8 bytes", e.Message, StringComparison.Ordinal);
        map.GetRef<int>(4) = 1;     // int needs only 4
        map.GetRef<byte>(offset) = 2; // byte needs none
    }

    [Fact]
    public void MemoryFromAMappingWritesToTheMapping()
    {
        using PmemFile file = PmemFile.Create(_dir.File("r"), Mib2);
        using DaxMapping map = file.Map();
        Memory<byte> memory = map.GetMemory(8192, 100);
        memory.Span.Fill(9);
        using (System.Buffers.MemoryHandle pin = memory.Pin())
        {
            unsafe
            {
                Assert.Equal((nint)map.DangerousGetPointer() + 8192, (nint)pin.Pointer);
            }
        }
        Assert.Equal(9, map.GetReadOnlySpan(8192 + 99, 1)[0]);
        Assert.Equal(0, map.GetReadOnlySpan(8192 + 100, 1)[0]);
    }

    [Fact]
    public void ASecondWritableOpenOfALockedFileIsRefusedAndASharedOpenIsAllowed()
    {
        string path = _dir.File("s");
        using (PmemFile owner = PmemFile.Create(path, Mib2))
        {
            var e = Assert.Throws<PmemInUseException>(() => PmemFile.Open(path));
            Assert.Equal(Errno.EWOULDBLOCK, e.Errno);
            Assert.Equal("EAGAIN", e.ErrnoName);
            Assert.Equal(path, e.Path);
            Assert.Contains("flock", e.Message, StringComparison.Ordinal);
            Assert.Throws<PmemInUseException>(() => PmemFile.Open(path, writable: false));
            Assert.Throws<PmemInUseException>(() => PmemFile.Open(path, shared: true));
        }

        using PmemFile a = PmemFile.Open(path, shared: true);
        using PmemFile b = PmemFile.Open(path, shared: true);
        using PmemFile reader = PmemFile.Open(path, writable: false);
        Assert.Throws<PmemInUseException>(() => PmemFile.Open(path));
    }

    [Fact]
    public void TheLockIsHeldUntilTheLastMappingOfTheFileIsGone()
    {
        string path = _dir.File("t");
        PmemFile file = PmemFile.Create(path, Mib2);
        DaxMapping map = file.Map();
        file.Dispose();
        map.GetSpan(0, 4).Fill(1); // the mapping outlives the descriptor
        Assert.Throws<PmemInUseException>(() => PmemFile.Open(path));
        map.Dispose();
        using PmemFile again = PmemFile.Open(path);
        Assert.Equal(Mib2, again.Size);
    }

    [Fact]
    public void AWritableOpenInAnotherProcessIsRefused()
    {
        string path = _dir.File("u");
        using PmemFile owner = PmemFile.Create(path, Mib2);
        // flock(1) from util-linux tries the same exclusive, non-blocking lock from another process.
        if (!File.Exists("/usr/bin/flock"))
        {
            Assert.Skip("flock(1) from util-linux is not installed");
        }
        using var child = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("/usr/bin/flock", ["-n", "-x", path, "true"])
        {
            RedirectStandardError = true,
        })!;
        child.WaitForExit();
        Assert.Equal(1, child.ExitCode);
    }

    [Fact]
    public void CreateRefusesAnExistingFileAndLeavesItIntact()
    {
        string path = _dir.File("v");
        File.WriteAllBytes(path, [1, 2, 3]);
        var e = Assert.Throws<PmemException>(() => PmemFile.Create(path, Mib2));
        Assert.Equal(Errno.EEXIST, e.Errno);
        Assert.Contains("EEXIST", e.Message, StringComparison.Ordinal);
        Assert.Equal(new byte[] { 1, 2, 3 }, File.ReadAllBytes(path));
    }

    [Fact]
    public void CreatedFilesAreOwnerOnlyWithSpaceAllocatedAndDescriptorsCloseOnExec()
    {
        string path = _dir.File("w");
        using PmemFile file = PmemFile.Create(path, 3 * Mib2);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Equal(3 * Mib2, new FileInfo(path).Length);
        Assert.Equal(MappingBacking.SharedMemory == file.Backing ? MappingBacking.SharedMemory : MappingBacking.PageCacheFile, file.Backing);
        string flags = File.ReadAllLines($"/proc/self/fdinfo/{file.Handle.Fd}").First(l => l.StartsWith("flags:", StringComparison.Ordinal));
        long octal = Convert.ToInt64(flags["flags:".Length..].Trim(), 8);
        Assert.NotEqual(0, octal & Libc.O_CLOEXEC);

        string custom = _dir.File("w2");
        using PmemFile other = PmemFile.Create(custom, Mib2, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(custom));
    }

    [Fact]
    public void OpenOfAMissingFileNamesThePathAndErrno()
    {
        string path = _dir.File("missing");
        var e = Assert.Throws<PmemNotFoundException>(() => PmemFile.Open(path));
        Assert.Equal(Errno.ENOENT, e.Errno);
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains("ENOENT", e.Message, StringComparison.Ordinal);
        Assert.StartsWith("open", e.Call, StringComparison.Ordinal);
    }

    [Fact]
    public void OpenRefusesDirectoriesAndCharacterDevices()
    {
        Assert.Contains("directory", Assert.ThrowsAny<PmemException>(() => PmemFile.Open(_dir.Path, writable: false)).Message, StringComparison.Ordinal);
        Assert.Contains("character device", Assert.Throws<PmemException>(() => PmemFile.Open("/dev/null", writable: false)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RequiringHugePagesOfAPageCacheFileIsRefusedWithTheReason()
    {
        using PmemFile file = PmemFile.Create(_dir.File("x"), 2 * Mib2);
        var e = Assert.Throws<PmemCapabilityException>(() => file.Map(new DaxMappingOptions { PageSize = PageSize.Pmd, RequirePageSize = true }));
        Assert.Contains("4 KiB", e.Message, StringComparison.Ordinal);
        Assert.Contains("hugetlb", e.Message, StringComparison.Ordinal);
        // Without the requirement the alignment rules are enforced and the mapping works.
        using DaxMapping map = file.Map(new DaxMappingOptions { PageSize = PageSize.Pmd });
        Assert.Equal(PageSize.Pmd, map.PageSize);
    }

    [Fact]
    public void PopulatePrefaultsEveryPage()
    {
        using PmemFile file = PmemFile.Create(_dir.File("y"), 2 * Mib2);
        using DaxMapping lazy = file.Map();
        Assert.True(lazy.ObservePageSize().Rss < 2 * Mib2);
        using DaxMapping eager = file.Map(new DaxMappingOptions { Populate = true, LockInMemory = true });
        PageSizeObservation seen = eager.ObservePageSize();
        Assert.Equal(2 * Mib2, seen.Rss);
        Assert.Contains("lo", seen.VmFlags.Split(' '));
    }

    [Fact]
    public void ErrorsFromTheKernelNameTheCallErrnoAndRange()
    {
        using PmemFile memfd = PmemFile.CreateMemory("errors", Mib2);
        // MAP_SYNC is refused on shared memory; ask the mapper with a source that claims it, as a DAX file would.
        var request = MapRequest.Create(new MapSyncClaimingSource(memfd), DaxMappingOptions.Default);
        var e = Assert.Throws<PmemException>(() => Mapper.Map(in request));
        Assert.Equal(Errno.EOPNOTSUPP, e.Errno);
        Assert.Equal("mmap", e.Call);
        Assert.Contains("EOPNOTSUPP", e.Message, StringComparison.Ordinal);
        Assert.Contains("memfd:errors", e.Message, StringComparison.Ordinal);
        Assert.Contains("range [0x0, +0x200000)", e.Message, StringComparison.Ordinal);
        Assert.Contains("MAP_SYNC", e.Message, StringComparison.Ordinal);
    }

    private sealed class MapSyncClaimingSource(PmemFile file) : MapSource
    {
        internal override MappingBacking Backing => MappingBacking.FsDaxFile;

        internal override string? Path => file.Path;

        internal override PageSize MinimumPageSize => PageSize.Pte;

        internal override PageSize FaultGranularity => PageSize.Pte;

        internal override DurabilityClass Durability => DurabilityClass.Volatile;

        internal override int MapFlags => Libc.MAP_SHARED_VALIDATE | Libc.MAP_SYNC;

        internal override long CurrentSize() => file.Size;

        internal override SafeFileDescriptor? AcquireDescriptor(bool readOnly, out bool owned)
        {
            owned = false;
            return file.Handle;
        }
    }

    internal static string ReadMapsLine(nint address)
    {
        string start = address.ToString("x", CultureInfo.InvariantCulture) + "-";
        return File.ReadLines("/proc/self/maps").First(l => l.StartsWith(start, StringComparison.Ordinal));
    }
}
