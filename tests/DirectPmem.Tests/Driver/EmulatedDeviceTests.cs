using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Tests.Fixtures;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Driver;

public sealed class EmulatedDeviceTests : IDisposable
{
    private const long Mib2 = 2 * 1024 * 1024;
    private const long Size = 8 * Mib2;
    private readonly TempDirectory _temp = new();

    // Tests that expect page-cache behaviour need a page-cache file system: /tmp may be a tmpfs.
    private TempDirectory? _pageCache;

    public void Dispose()
    {
        _temp.Dispose();
        _pageCache?.Dispose();
    }

    private string DevicePath => _temp.File("dax.emu");

    private string PageCacheDevicePath => (_pageCache ??= PageCacheDirectory.Create()).File("dax.emu");

    [Fact]
    public void CreatedDeviceReopensWithItsGeometryAndData()
    {
        using (DaxDevice created = DaxDevice.CreateEmulated(DevicePath, Size, PageSize.Pmd))
        {
            Assert.True(created.IsEmulated);
            Assert.Equal(Size, created.Size);
            Assert.Equal(PageSize.Pmd, created.Align);
            Assert.Equal(DevicePath, created.DevicePath);
            using DaxMapping map = created.Map(new DaxMappingOptions { Offset = 2 * Mib2, Length = Mib2 * 2 });
            "emulated"u8.CopyTo(map.GetSpan(4096, 8));
            map.Persist(4096, 8);
        }
        // The data lies at file offset == device offset; the descriptor page follows it.
        Assert.Equal(Size + Environment.SystemPageSize, new FileInfo(DevicePath).Length);

        using DaxDevice reopened = DaxDevice.OpenEmulated(DevicePath);
        Assert.Equal(Size, reopened.Size);
        Assert.Equal(PageSize.Pmd, reopened.Align);
        using DaxMapping again = reopened.Map();
        Assert.Equal(Size, again.Length);
        Assert.True("emulated"u8.SequenceEqual(again.GetReadOnlySpan(2 * Mib2 + 4096, 8)));
    }

    [Fact]
    public void EmulatedDeviceOnAnOrdinaryFileReportsPageCachePersistenceAndSmallFaults()
    {
        using DaxDevice dax = DaxDevice.CreateEmulated(PageCacheDevicePath, Size, PageSize.Pmd);
        Assert.Equal(MappingBacking.PageCacheFile, dax.Backing);
        Assert.Equal(DaxPersistence.PageCache, dax.Persistence);
        Assert.Equal(PageSize.Pte, dax.FaultGranularity);
        var error = Assert.Throws<PmemCapabilityException>(() => dax.Map(new DaxMappingOptions { RequirePageSize = true }));
        Assert.Contains("4 KiB", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MappingsAreSharedAlignedAndNotInheritedByFork()
    {
        using DaxDevice dax = DaxDevice.CreateEmulated(DevicePath, Size, PageSize.Pmd);
        using DaxMapping first = dax.Map(new DaxMappingOptions { Length = Mib2 });
        using DaxMapping second = dax.Map(new DaxMappingOptions { Length = Mib2 });
        Assert.Equal(0, first.AddressOf() % Mib2);
        Assert.Equal(PageSize.Pmd, first.PageSize);
        first.GetRef<long>(64) = 0x1234;
        Assert.Equal(0x1234, second.GetReadOnlyRef<long>(64));
        Assert.True(first.ObservePageSize().DontFork);
    }

    [Theory]
    [InlineData(PageSize.Pmd, PageSize.Pte)]
    [InlineData(PageSize.Pte, PageSize.Pmd)]
    [InlineData(PageSize.Pmd, PageSize.Pud)]
    public void ReopeningWithADifferentAlignIsRefused(PageSize created, PageSize asked)
    {
        long size = created == PageSize.Pte ? 16 * 4096 : Size;
        DaxDevice.CreateEmulated(DevicePath, size, created).Dispose();
        var error = Assert.Throws<DaxConfigurationException>(() => DaxDevice.OpenEmulated(DevicePath, align: asked));
        Assert.Equal(DaxConfigurationRule.GeometryMismatch, error.Rule);
        Assert.Equal(DevicePath, error.FilePath);
        // The refused open released its lock: the right align opens.
        using DaxDevice ok = DaxDevice.OpenEmulated(DevicePath, align: created, size: size);
        Assert.Equal(created, ok.Align);
    }

    [Fact]
    public void ReopeningWithADifferentSizeOrAResizedFileIsRefused()
    {
        DaxDevice.CreateEmulated(DevicePath, Size, PageSize.Pmd).Dispose();
        Assert.Equal(DaxConfigurationRule.GeometryMismatch,
            Assert.Throws<DaxConfigurationException>(() => DaxDevice.OpenEmulated(DevicePath, size: Size + Mib2)).Rule);
        using (var stream = new FileStream(DevicePath, FileMode.Open, FileAccess.Write))
        {
            stream.SetLength(stream.Length + 4096);
        }
        Assert.Equal(DaxConfigurationRule.BadDescriptor,
            Assert.Throws<DaxConfigurationException>(() => DaxDevice.OpenEmulated(DevicePath)).Rule);
    }

    [Fact]
    public void EveryByteOfACorruptDescriptorIsDetected()
    {
        DaxDevice.CreateEmulated(DevicePath, Size, PageSize.Pmd).Dispose();
        for (int i = 0; i < DaxDevice.DescriptorLength; i++)
        {
            FlipByte(DevicePath, Size + i);
            var error = Assert.Throws<DaxConfigurationException>(() => DaxDevice.OpenEmulated(DevicePath));
            Assert.Equal(DaxConfigurationRule.BadDescriptor, error.Rule);
            FlipByte(DevicePath, Size + i);
        }
        DaxDevice.OpenEmulated(DevicePath).Dispose();
    }

    [Fact]
    public void AFileThatIsNotAnEmulatedDeviceIsRefused()
    {
        File.WriteAllBytes(DevicePath, new byte[3 * 4096]);
        var error = Assert.Throws<DaxConfigurationException>(() => DaxDevice.OpenEmulated(DevicePath));
        Assert.Equal(DaxConfigurationRule.BadDescriptor, error.Rule);
    }

    [Theory]
    [InlineData(4096L, Mib2, "Offset")]
    [InlineData(Mib2 - 4096, Mib2, "Offset")]
    [InlineData(Mib2 + 4096, Mib2, "Offset")]
    [InlineData(1L, Mib2, "Offset")]
    [InlineData(0L, 4096L, "Length")]
    [InlineData(0L, Mib2 - 4096, "Length")]
    [InlineData(0L, Mib2 + 4096, "Length")]
    [InlineData(Mib2, 1L, "Length")]
    public void EveryMisalignedMapIsRefused(long offset, long length, string param)
    {
        using DaxDevice dax = DaxDevice.CreateEmulated(DevicePath, Size, PageSize.Pmd);
        var error = Assert.Throws<ArgumentException>(() => dax.Map(new DaxMappingOptions { Offset = offset, Length = length }));
        Assert.Equal(param, error.ParamName);
    }

    [Theory]
    [InlineData(Size, Mib2)]
    [InlineData(0L, Size + Mib2)]
    [InlineData(Size - Mib2, 2 * Mib2)]
    [InlineData(Size + Mib2, Mib2)]
    public void MapsPastTheSizeAreRefusedEvenThoughTheFileIsLonger(long offset, long length)
    {
        using DaxDevice dax = DaxDevice.CreateEmulated(DevicePath, Size, PageSize.Pmd);
        Assert.Throws<ArgumentOutOfRangeException>(() => dax.Map(new DaxMappingOptions { Offset = offset, Length = length }));
        using DaxMapping last = dax.Map(new DaxMappingOptions { Offset = Size - Mib2, Length = Mib2 });
        Assert.Equal(Size - Mib2, last.SourceOffset);
    }

    [Fact]
    public void APageSizeBelowTheAlignIsRefusedAndALargerOneIsAccepted()
    {
        using DaxDevice dax = DaxDevice.CreateEmulated(DevicePath, Size, PageSize.Pmd);
        Assert.Throws<ArgumentException>(() => dax.Map(new DaxMappingOptions { PageSize = PageSize.Pte, Length = Mib2 }));
        using DaxDevice small = DaxDevice.CreateEmulated(_temp.File("small"), 4 * Mib2, PageSize.Pte);
        using DaxMapping big = small.Map(new DaxMappingOptions { PageSize = PageSize.Pmd, Offset = Mib2, Length = Mib2 });
        Assert.Equal(PageSize.Pmd, big.PageSize);
        Assert.Equal(0, big.AddressOf() % Mib2);
    }

    [Fact]
    public void CreationRefusesASizeNotAMultipleOfTheAlignAndAnExistingFile()
    {
        Assert.Throws<ArgumentException>(() => DaxDevice.CreateEmulated(DevicePath, Size + 4096, PageSize.Pmd));
        Assert.False(File.Exists(DevicePath));
        DaxDevice.CreateEmulated(DevicePath, Size, PageSize.Pmd).Dispose();
        Assert.ThrowsAny<PmemException>(() => DaxDevice.CreateEmulated(DevicePath, Size, PageSize.Pmd));
        Assert.Equal(Size + Environment.SystemPageSize, new FileInfo(DevicePath).Length);
    }

    [Fact]
    public void ASecondWritableOpenIsRefusedWhileTheDeviceIsOpen()
    {
        using DaxDevice dax = DaxDevice.CreateEmulated(DevicePath, Size, PageSize.Pmd);
        Assert.Throws<PmemInUseException>(() => DaxDevice.OpenEmulated(DevicePath));
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void CreatedFileIsOwnerReadWriteOnly()
    {
        DaxDevice.CreateEmulated(DevicePath, Size, PageSize.Pmd).Dispose();
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(DevicePath));
    }

    [Fact]
    public void MemfdDeviceIsVolatileSharedMemory()
    {
        using DaxDevice dax = DaxDevice.CreateEmulatedMemory("driver-test", Size, PageSize.Pmd);
        Assert.True(dax.IsEmulated);
        Assert.Equal(MappingBacking.SharedMemory, dax.Backing);
        Assert.Equal(DaxPersistence.Volatile, dax.Persistence);
        Assert.Equal(PageSize.Pte, dax.FaultGranularity);
        using DaxMapping map = dax.Map();
        Assert.Equal(Size, map.Length);
        Assert.Throws<ArgumentException>(() => dax.Map(new DaxMappingOptions { Offset = 4096, Length = Mib2 }));
    }

    internal static void FlipByte(string path, long offset)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = offset;
        int b = stream.ReadByte();
        stream.Position = offset;
        stream.WriteByte((byte)(b ^ 0xFF));
    }
}
