using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Persistence;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Mapping;

/// <summary>
/// Issue 11, item 5, for the mapping, persistence and geometry entry points: every public entry
/// point meets at least one misuse, and each asserts the exception type and that the message names
/// the offending value (or the file and its size).
/// </summary>
public sealed class MisuseTests : IDisposable
{
    private const long Mib = 1 << 20;
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static void Refused<T>(Action action, params string[] named) where T : Exception
    {
        Exception e = Assert.ThrowsAny<Exception>(action);
        Assert.IsType<T>(e);
        foreach (string text in named)
        {
            Assert.Contains(text, e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void PmemFileCreateRefusesBadPathsSizesAndModes()
    {
        Refused<ArgumentException>(() => PmemFile.Create(_dir.File("a\0b"), Mib), "NUL", "index", "'" + _dir.File("a") + "'");
        Refused<ArgumentException>(() => PmemFile.Create(_dir.File("bad\ud800"), Mib), "unpaired surrogate", "\\ud800");
        Refused<ArgumentException>(() => PmemFile.Create("", Mib));
        Refused<ArgumentOutOfRangeException>(() => PmemFile.Create(_dir.File("zero"), 0), "0");
        Refused<ArgumentOutOfRangeException>(() => PmemFile.Create(_dir.File("mode"), Mib, (UnixFileMode)0x10000), "0x10000");
        // Not a multiple of 4 KiB on an ordinary file system: says so, does not blame hugetlbfs.
        var e = Assert.Throws<ArgumentException>(() => PmemFile.Create(_dir.File("odd"), 5000));
        Assert.Contains("5000", e.Message, StringComparison.Ordinal);
        Assert.Contains("4 KiB", e.Message, StringComparison.Ordinal);
        Assert.Contains("4096 and 8192", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hugetlbfs", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(_dir.File("odd")));
    }

    [Fact]
    public async Task PmemFileOpenRefusesAFifoAtOnceInsteadOfBlocking()
    {
        string fifo = _dir.File("fifo");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [fifo]))
        {
            mkfifo.WaitForExit();
            Assert.Equal(0, mkfifo.ExitCode);
        }
        // A blocking open would hang this task; the timeout turns that into a failure.
        PmemException e = await Task.Run(() => Assert.Throws<PmemException>(() => PmemFile.Open(fifo)), TestContext.Current.CancellationToken)
            .WaitAsync(TestTime.Limit(TimeSpan.FromMinutes(1)), TestContext.Current.CancellationToken);
        Assert.Contains("FIFO", e.Message, StringComparison.Ordinal);
        Assert.Contains(fifo, e.Message, StringComparison.Ordinal);
        Refused<PmemException>(() => PmemFile.Open(fifo, writable: false), "FIFO");
        Refused<PmemException>(() => PmemFile.Open(_dir.Path), "a directory", _dir.Path);
        Refused<PmemNotFoundException>(() => PmemFile.Open(_dir.File("missing")), "ENOENT", _dir.File("missing"));
        Refused<ArgumentException>(() => PmemFile.Open(_dir.File("x\0y")), "NUL");
    }

    [Fact]
    public void PmemFileCreateMemoryRefusesBadNamesSizesAndModes()
    {
        Refused<ArgumentException>(() => PmemFile.CreateMemory("a\0b", Mib), "NUL", "'a'");
        Refused<ArgumentException>(() => PmemFile.CreateMemory(new string('n', 250), Mib), "250", "249");
        Refused<ArgumentOutOfRangeException>(() => PmemFile.CreateMemory("m", -4096), "-4096");
        Refused<ArgumentOutOfRangeException>(() => PmemFile.CreateMemory("m", Mib, (HugePages)9), "9");
        Refused<ArgumentException>(() => PmemFile.CreateMemory("m", Mib, HugePages.Hugetlb, PageSize.Pte), "2 MiB or 1 GiB");
        Refused<ArgumentException>(() => PmemFile.CreateMemory("m", Mib, HugePages.Hugetlb), "1048576", "2 MiB");
    }

    [Fact]
    public void MapNamesTheFileAndItsSizeForAnEmptyFileAnOffsetAtOrPastTheEndAndBadOptions()
    {
        string emptyPath = _dir.File("empty");
        File.WriteAllBytes(emptyPath, []);
        using (PmemFile empty = PmemFile.Open(emptyPath))
        {
            Refused<ArgumentOutOfRangeException>(() => empty.Map(), emptyPath, "is empty (size 0)");
        }
        using PmemFile file = PmemFile.Create(_dir.File("f"), Mib, shared: true);
        Refused<ArgumentOutOfRangeException>(() => file.Map(new DaxMappingOptions { Offset = Mib }), "Offset 1048576", "at the end", "size is 1048576", file.Path);
        Refused<ArgumentOutOfRangeException>(() => file.Map(new DaxMappingOptions { Offset = 2 * Mib }), "Offset 2097152", "past the end", "size is 1048576");
        Refused<ArgumentOutOfRangeException>(() => file.Map(new DaxMappingOptions { Offset = -4096 }), "-4096");
        Refused<ArgumentOutOfRangeException>(() => file.Map(new DaxMappingOptions { Length = 2 * Mib }), "0x200000", "past the end 0x100000", file.Path);
        Refused<ArgumentException>(() => file.Map(new DaxMappingOptions { Offset = 100, Length = 4096 }), "0x64", "4 KiB");
        Refused<ArgumentException>(() => file.Map(new DaxMappingOptions { Length = 5000 }), "0x1388", "4 KiB");
        Refused<ArgumentOutOfRangeException>(() => file.Map(new DaxMappingOptions { PageSize = (PageSize)8192 }), "8192");
        Refused<ArgumentOutOfRangeException>(() => file.Map(new DaxMappingOptions { HugePages = (HugePages)7 }), "HugePages 7");
        Refused<ArgumentOutOfRangeException>(() => file.Map(new DaxMappingOptions { RequiredGranularity = (PersistGranularity)9 }), "RequiredGranularity 9");
        using (PmemFile reader = PmemFile.Open(_dir.File("f"), writable: false, shared: true))
        {
            Refused<InvalidOperationException>(() => reader.Map(), "read-only", "ReadOnly = true", file.Path);
        }
        file.Dispose();
        Refused<ObjectDisposedException>(() => file.Map(), nameof(PmemFile));
    }

    [Fact]
    public void CreateAnonymousRefusesBadLengthsAndContradictoryOptions()
    {
        Refused<ArgumentOutOfRangeException>(() => DaxMapping.CreateAnonymous(0), "length is 0");
        Refused<ArgumentOutOfRangeException>(() => DaxMapping.CreateAnonymous(-8192), "-8192");
        Refused<ArgumentException>(() => DaxMapping.CreateAnonymous(5000), "0x1388");
        Refused<ArgumentOutOfRangeException>(() => DaxMapping.CreateAnonymous(4096, new DaxMappingOptions { Offset = 4096 }), "Offset must be 0, not 4096");
        Refused<ArgumentException>(() => DaxMapping.CreateAnonymous(4096, new DaxMappingOptions { Length = 8192 }), "8192", "4096");
        Refused<ArgumentException>(() => DaxMapping.CreateAnonymous(Mib, new DaxMappingOptions { HugePages = HugePages.Hugetlb, PageSize = PageSize.Pte }), "4 KiB", "2 MiB");
    }

    [Fact]
    public void EveryMappingOperationRefusesARangeOutsideTheMappingNamingIt()
    {
        using DaxMapping map = DaxMapping.CreateAnonymous(8192);
        const string Range = "offset 0x2000 length 0x8";
        Refused<ArgumentOutOfRangeException>(() => map.GetSpan(8192, 8), Range, "0x2000 bytes");
        Refused<ArgumentOutOfRangeException>(() => map.GetReadOnlySpan(8192, 8), Range);
        Refused<ArgumentOutOfRangeException>(() => map.GetRef<long>(8192), Range);
        Refused<ArgumentOutOfRangeException>(() => map.GetReadOnlyRef<long>(8192), Range);
        Refused<ArgumentOutOfRangeException>(() => map.GetMemory(8192, 8), Range);
        Refused<ArgumentOutOfRangeException>(() => map.GetReadOnlyMemory(8192, 8), Range);
        Refused<ArgumentOutOfRangeException>(() => map.Persist(8192, 8), Range);
        Refused<ArgumentOutOfRangeException>(() => map.Flush(8192, 8), Range);
        Refused<ArgumentOutOfRangeException>(() => map.Write(new byte[8], 8192), Range);
        Refused<ArgumentOutOfRangeException>(() => map.Move(0, 8192, 8), Range);
        Refused<ArgumentOutOfRangeException>(() => map.Move(8192, 0, 8), Range);
        Refused<ArgumentOutOfRangeException>(() => map.Fill(8192, 8, 0), Range);
        Refused<ArgumentOutOfRangeException>(() => map.Publish(8192, 1), Range);
        Refused<ArgumentOutOfRangeException>(() => map.Persist(-8, 8), "0xfffffffffffffff8");
        Refused<ArgumentException>(() => map.GetRef<long>(4), "0x4", "8 bytes", "Int64");
        Refused<ArgumentException>(() => map.Publish(12, 1), "0xc", "8 bytes");
        Refused<ArgumentOutOfRangeException>(() => map.Write(new byte[8], 0, (PmemCopyOptions)0x30), "0x30", "undefined bits 0x30");
        Refused<ArgumentOutOfRangeException>(() => map.Move(0, 64, 8, (PmemCopyOptions)0x100), "0x100");
        Refused<ArgumentOutOfRangeException>(() => map.Fill(0, 8, 1, (PmemCopyOptions)(-1)), "undefined bits");
    }

    [Fact]
    public void WritesToAReadOnlyMappingAreRefused()
    {
        using DaxMapping map = DaxMapping.CreateAnonymous(4096, new DaxMappingOptions { ReadOnly = true });
        Refused<InvalidOperationException>(() => map.GetSpan(0, 1), "read-only");
        Refused<InvalidOperationException>(() => map.GetRef<int>(0), "read-only");
        Refused<InvalidOperationException>(() => map.GetMemory(0, 1), "read-only");
        Refused<InvalidOperationException>(() => map.Write(new byte[1], 0), "read-only");
        Refused<InvalidOperationException>(() => map.Move(0, 8, 8), "read-only");
        Refused<InvalidOperationException>(() => map.Fill(0, 1, 1), "read-only");
        Refused<InvalidOperationException>(() => map.Publish(0, 1), "read-only");
    }

    [Fact]
    public unsafe void EveryMappingOperationAfterDisposeThrowsObjectDisposed()
    {
        DaxMapping map = DaxMapping.CreateAnonymous(4096);
        Memory<byte> memory = map.GetMemory(0, 16);
        map.Dispose();
        Action[] uses =
        [
            () => map.GetSpan(0, 1), () => map.GetReadOnlySpan(0, 1), () => map.GetRef<int>(0), () => map.GetReadOnlyRef<int>(0),
            () => map.GetMemory(0, 1), () => map.GetReadOnlyMemory(0, 1), () => map.DangerousGetPointer(), () => map.Persist(0, 1),
            () => map.Flush(0, 1), () => map.Drain(), () => map.Write(new byte[1], 0), () => map.Move(0, 8, 8), () => map.Fill(0, 1, 1),
            () => map.Publish(0, 1), () => map.ObservePageSize(), () => _ = memory.Span,
        ];
        foreach (Action use in uses)
        {
            Refused<ObjectDisposedException>(use, nameof(DaxMapping));
        }
        Assert.Equal(0, map.Length);
    }

    [Fact]
    public void EveryZeroLengthOperationAfterDisposeThrowsObjectDisposed()
    {
        // Issue 24: an empty range passed the bounds check of a disposed mapping (length 0).
        DaxMapping map = DaxMapping.CreateAnonymous(4096);
        long end = map.Length;
        map.Dispose();
        Action[] uses =
        [
            () => map.GetSpan(0, 0), () => map.GetReadOnlySpan(0, 0), () => map.GetMemory(0, 0), () => map.GetReadOnlyMemory(0, 0),
            () => map.GetSpan(end, 0), () => map.GetReadOnlySpan(end, 0), () => map.Persist(0, 0), () => map.Flush(0, 0),
            () => map.DeepFlush(0, 0), () => map.Write(ReadOnlySpan<byte>.Empty, 0), () => map.Move(0, 0, 0), () => map.Fill(0, 0, 1),
        ];
        foreach (Action use in uses)
        {
            Refused<ObjectDisposedException>(use, nameof(DaxMapping));
        }
    }

    [Fact]
    public void RangeChecksAcceptTheLastBytesAndRefuseOneMoreAtEveryEdge()
    {
        using DaxMapping map = DaxMapping.CreateAnonymous(8192);
        Assert.Equal(0, map.GetSpan(8192, 0).Length);
        Assert.Equal(0, map.GetReadOnlySpan(8192, 0).Length);
        Assert.Equal(1, map.GetSpan(8191, 1).Length);
        Assert.Equal(8192, map.GetReadOnlySpan(0, 8192).Length);
        map.GetRef<long>(8184) = 42;
        Assert.Equal(42, map.GetReadOnlyRef<long>(8184));
        Assert.Equal(42, map.GetReadOnlySpan(8184, 8)[0]);
        map.GetRef<byte>(8191) = 7;
        Assert.Equal(7, map.GetReadOnlyRef<byte>(8191));
        // Empty ranges at the very end of a live mapping are accepted by every operation.
        map.Persist(8192, 0);
        map.Flush(8192, 0);
        map.Write(ReadOnlySpan<byte>.Empty, 8192);
        map.Move(8192, 8192, 0);
        map.Fill(8192, 0, 1);
        Assert.Equal(0, map.GetMemory(8192, 0).Length);
        Assert.Equal(0, map.GetReadOnlyMemory(8192, 0).Length);
        Assert.Equal(7, map.GetReadOnlyRef<byte>(8191));
        Refused<ArgumentOutOfRangeException>(() => map.GetSpan(8192, 1), "offset 0x2000 length 0x1");
        Refused<ArgumentOutOfRangeException>(() => map.GetSpan(8191, 2), "offset 0x1fff length 0x2");
        Refused<ArgumentOutOfRangeException>(() => map.GetReadOnlySpan(8193, 0), "offset 0x2001 length 0x0");
        Refused<ArgumentOutOfRangeException>(() => map.GetSpan(0, -1), "length 0xffffffffffffffff");
        Refused<ArgumentOutOfRangeException>(() => map.GetSpan(-1, 0), "offset 0xffffffffffffffff");
        Refused<ArgumentOutOfRangeException>(() => map.GetSpan(long.MaxValue, 1), "offset 0x7fffffffffffffff");
        Refused<ArgumentOutOfRangeException>(() => map.GetRef<long>(8192), "offset 0x2000 length 0x8");
        Refused<ArgumentOutOfRangeException>(() => map.GetRef<long>(-8), "offset 0xfffffffffffffff8");
        Refused<ArgumentOutOfRangeException>(() => map.GetReadOnlyRef<byte>(-1), "offset 0xffffffffffffffff");
        Refused<ArgumentOutOfRangeException>(() => map.GetReadOnlyRef<long>(long.MaxValue - 7), "offset 0x7ffffffffffffff8");
        Refused<ArgumentOutOfRangeException>(() => map.GetRef<Block16K>(0), "offset 0x0 length 0x4000");
        Refused<ArgumentException>(() => map.GetReadOnlyRef<int>(8186), "0x1ffa", "4 bytes", "Int32");
        Refused<ArgumentException>(() => map.GetRef<short>(8189), "0x1ffd", "2 bytes", "Int16");
    }

    [Theory]
    [InlineData(-8L)]
    [InlineData(-1L)]
    [InlineData(long.MinValue)]
    [InlineData(long.MinValue + 8)]
    [InlineData(long.MaxValue)]
    [InlineData(long.MaxValue - 7)]
    [InlineData(8192L)]
    [InlineData(8190L)]
    [InlineData(1L << 60)]
    [InlineData(1L << 61)]
    public void EightByteRefsRefuseEveryOffsetOutsideTheMappingAsOutOfRange(long offset)
    {
        // The 8-byte ref check is one rotate and one compare: every negative, huge or past-the-end
        // offset must still fail, and say it is out of range (not misaligned).
        using DaxMapping map = DaxMapping.CreateAnonymous(8192);
        string named = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"offset 0x{offset:x} length 0x8");
        Refused<ArgumentOutOfRangeException>(() => map.GetRef<long>(offset), named);
        Refused<ArgumentOutOfRangeException>(() => map.GetReadOnlyRef<double>(offset), named);
        Refused<ArgumentOutOfRangeException>(() => map.GetRef<ulong>(offset), named);
        Refused<ArgumentOutOfRangeException>(() => map.Publish(offset, 1), named);
        // 4- and 2-byte refs take the same path in their own units.
        Refused<ArgumentOutOfRangeException>(() => map.GetRef<int>(offset == 8190 ? 8190 : offset), "length 0x4");
        Refused<ArgumentOutOfRangeException>(() => map.GetReadOnlyRef<float>(offset == 8190 ? 8190 : offset), "length 0x4");
        Refused<ArgumentOutOfRangeException>(() => map.GetRef<short>(offset == 8190 ? 8191 : offset), "length 0x2");
        Refused<ArgumentOutOfRangeException>(() => map.GetReadOnlyRef<char>(offset == 8190 ? 8191 : offset), "length 0x2");
    }

    [Theory]
    [InlineData(1L)]
    [InlineData(4L)]
    [InlineData(7L)]
    [InlineData(8180L)]
    public void EightByteRefsRefuseAMisalignedOffsetInsideTheMapping(long offset)
    {
        using DaxMapping map = DaxMapping.CreateAnonymous(8192);
        string named = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"0x{offset:x}");
        Refused<ArgumentException>(() => map.GetRef<long>(offset), named, "8 bytes", "Int64");
        Refused<ArgumentException>(() => map.GetReadOnlyRef<double>(offset), named, "8 bytes", "Double");
        if (offset % 4 != 0)
        {
            Refused<ArgumentException>(() => map.GetRef<int>(offset), named, "4 bytes", "Int32");
        }
        if (offset % 2 != 0)
        {
            Refused<ArgumentException>(() => map.GetReadOnlyRef<short>(offset), named, "2 bytes", "Int16");
        }
    }

    [Fact]
    public void NaturallySizedRefsReachTheLastUnitAndNothingAfterDispose()
    {
        DaxMapping map = DaxMapping.CreateAnonymous(8192);
        for (long offset = 0; offset < 8192; offset += 8)
        {
            map.GetRef<long>(offset) = offset;
        }
        Assert.Equal(8184, map.GetReadOnlyRef<long>(8184));
        Assert.Equal(0, map.GetReadOnlyRef<long>(0));
        map.GetRef<int>(8188) = 5;
        map.GetRef<short>(8186) = 6;
        Assert.Equal(5, map.GetReadOnlyRef<int>(8188));
        Assert.Equal(6, map.GetReadOnlyRef<short>(8186));
        map.Dispose();
        Refused<ObjectDisposedException>(() => map.GetRef<int>(0), nameof(DaxMapping));
        Refused<ObjectDisposedException>(() => map.GetReadOnlyRef<short>(0), nameof(DaxMapping));
        Refused<ObjectDisposedException>(() => map.GetRef<long>(0), nameof(DaxMapping));
        Refused<ObjectDisposedException>(() => map.GetReadOnlyRef<double>(8184), nameof(DaxMapping));
    }

    [Fact]
    public void EightByteRefsOfAReadOnlyMappingAreReadableAndRefuseWrites()
    {
        using DaxMapping map = DaxMapping.CreateAnonymous(4096, new DaxMappingOptions { ReadOnly = true });
        Assert.Equal(0, map.GetReadOnlyRef<long>(4088));
        Refused<InvalidOperationException>(() => map.GetRef<long>(0), "read-only");
        Refused<InvalidOperationException>(() => map.GetRef<double>(4088), "read-only");
        Refused<InvalidOperationException>(() => map.GetRef<int>(4092), "read-only");
        Refused<InvalidOperationException>(() => map.GetRef<short>(4094), "read-only");
        Assert.Equal(0, map.GetReadOnlyRef<short>(4094));
        Refused<ArgumentException>(() => map.GetRef<long>(12), "0xc", "8 bytes");
        Refused<ArgumentOutOfRangeException>(() => map.GetRef<long>(4096), "offset 0x1000 length 0x8");
    }

    [Fact]
    public void AReadOnlyMappingSaysReadOnlyOnlyForAnInRangeAlignedWrite()
    {
        using DaxMapping map = DaxMapping.CreateAnonymous(4096, new DaxMappingOptions { ReadOnly = true });
        Refused<InvalidOperationException>(() => map.GetSpan(0, 0), "read-only");
        Refused<InvalidOperationException>(() => map.GetSpan(4096, 0), "read-only");
        Refused<InvalidOperationException>(() => map.GetRef<long>(4088), "read-only");
        Refused<ArgumentOutOfRangeException>(() => map.GetSpan(4096, 1), "offset 0x1000 length 0x1");
        Refused<ArgumentOutOfRangeException>(() => map.GetRef<long>(4096), "offset 0x1000 length 0x8");
        Refused<ArgumentException>(() => map.GetRef<long>(4), "0x4", "8 bytes");
        Assert.Equal(0, map.GetReadOnlyRef<long>(4088));
        Assert.Equal(4096, map.GetReadOnlySpan(0, 4096).Length);
    }

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential, Size = 16384)]
    private struct Block16K
    {
        public long First;
    }

    [Fact]
    public unsafe void PointerLevelCopiesRefuseUndefinedFlags()
    {
        using DaxMapping map = DaxMapping.CreateAnonymous(4096);
        byte* p = map.DangerousGetPointer();
        Refused<ArgumentOutOfRangeException>(() => Pmem.DangerousCopy(p, p + 64, 8, (PmemCopyOptions)0x40), "0x40");
        Refused<ArgumentOutOfRangeException>(() => Pmem.DangerousFill(p, 0, 8, (PmemCopyOptions)0x80), "0x80");
    }

    [Fact]
    public void PageSizesAndGranularityComparisonsRefuseUndefinedValues()
    {
        Refused<ArgumentOutOfRangeException>(() => PageSizes.FromBytes(8192), "8192 bytes is not a page size");
        Refused<ArgumentOutOfRangeException>(() => PageSizes.Validate((PageSize)12345), "12345");
        Refused<ArgumentOutOfRangeException>(() => ((PersistGranularity)7).IsAtLeastAsFineAs(PersistGranularity.None), "7 is not a PersistGranularity");
        Assert.True(PersistGranularity.Byte.IsAtLeastAsFineAs(PersistGranularity.CacheLine));
        Assert.True(PersistGranularity.CacheLine.IsAtLeastAsFineAs(PersistGranularity.Page));
        Assert.False(PersistGranularity.Page.IsAtLeastAsFineAs(PersistGranularity.CacheLine));
        Assert.False(PersistGranularity.None.IsAtLeastAsFineAs(PersistGranularity.Page));
        Assert.True(PersistGranularity.None.IsAtLeastAsFineAs(PersistGranularity.None));
    }

    [Fact]
    public void EmulatedDevicesRefuseBadPathsAndMapsRefuseMisalignedRanges()
    {
        Refused<ArgumentException>(() => DaxDevice.CreateEmulated(_dir.File("d\0"), 2 * Mib, PageSize.Pmd), "NUL");
        Refused<ArgumentException>(() => DaxDevice.OpenEmulated(_dir.File("d\0")), "NUL");
        Refused<ArgumentException>(() => DaxDevice.CreateEmulatedMemory("d\0", 2 * Mib, PageSize.Pmd), "NUL");
        using DaxDevice device = DaxDevice.CreateEmulatedMemory("misuse", 4 * Mib, PageSize.Pmd);
        Refused<ArgumentException>(() => device.Map(new DaxMappingOptions { Offset = 4096, Length = 2 * Mib }), "0x1000", "2 MiB");
        Refused<ArgumentException>(() => device.Map(new DaxMappingOptions { PageSize = PageSize.Pte }), "4 KiB", "2 MiB alignment");
        Refused<ArgumentOutOfRangeException>(() => device.Map(new DaxMappingOptions { Offset = 4 * Mib }), "Offset 4194304", "size is 4194304");
        Refused<ArgumentException>(() => device.Map(new DaxMappingOptions { HugePages = HugePages.Hugetlb }), "HugePages = Hugetlb");
        Refused<PmemCapabilityException>(() => device.Map(new DaxMappingOptions { RequiredGranularity = PersistGranularity.Page }), "granularity", device.DevicePath);
        Refused<PmemCapabilityException>(() => device.Map(new DaxMappingOptions { RequirePageSize = true }), "2 MiB", "4 KiB");
    }
}
