using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using Xunit;

namespace DirectPmem.Storage.Tests;

public sealed class PoolTests
{
    internal const string Layout = "test-layout";

    internal static DaxMapping NewMapping(long length = 64 * 1024) => DaxMapping.CreateAnonymous(length);

    /// <summary>Rewrites both header copies with a field changed and a valid checksum.</summary>
    internal static void Tamper(DaxMapping mapping, Action<PoolHeader> change)
    {
        PoolHeader header = PoolHeader.Read(mapping.GetReadOnlySpan(0, PoolHeader.Size), new CollectingPoolSink());
        change(header);
        byte[] block = new byte[PoolHeader.Size];
        header.WriteTo(block);
        mapping.Write(block, 0);
        mapping.Write(block, PoolHeader.Size);
    }

    [Fact]
    public void CreatedPoolReopensWithItsFieldsAndCleanState()
    {
        using DaxMapping mapping = NewMapping();
        Guid uuid;
        using (PmemPool pool = TestPools.Create(mapping, Layout, new PoolCreateOptions { ReservedLength = 8192 }))
        {
            uuid = pool.Uuid;
            Assert.Equal(Layout, pool.Layout);
            Assert.Equal(64 * 1024, pool.Size);
            Assert.Equal(4096, pool.PageSize);
            Assert.Equal(8192, pool.ReservedOffset);
            Assert.Equal(8192 + 8192, pool.ReservedLength); // the directory's two blocks, then the 8 KiB asked for
            Assert.Equal(24576, pool.DataOffset);
            Assert.Equal(0, pool.RootOffset);
            Assert.True(pool.WasCleanlyClosed);
            Assert.False(pool.IsReadOnly);
            pool.SetRoot(28672);
        }
        using PmemPool reopened = PmemPool.Open(mapping, Layout);
        Assert.Equal(uuid, reopened.Uuid);
        Assert.Equal(28672, reopened.RootOffset);
        Assert.True(reopened.WasCleanlyClosed);
        Assert.False(reopened.NeedsRecovery);
        Assert.Equal(PoolHeaderRepair.None, reopened.HeaderRepair);
        Assert.Equal(new Version(1, 1), reopened.FormatVersion);
        Assert.Equal(PoolFeatures.Directory | PoolFeatures.DurabilityRecorded, reopened.Features);
        Assert.True(Math.Abs((DateTimeOffset.UtcNow - reopened.CreationTime).TotalMinutes) < 5);
    }

    [Fact]
    public void PoolLeftOpenIsReportedAsNotCleanlyClosed()
    {
        using DaxMapping mapping = NewMapping();
        TestPools.Create(mapping, Layout); // never disposed: a crash while in use
        using (PmemPool second = PmemPool.Open(mapping, Layout))
        {
            Assert.False(second.WasCleanlyClosed);
            Assert.True(second.NeedsRecovery);
        }
        using PmemPool third = PmemPool.Open(mapping, Layout);
        Assert.True(third.WasCleanlyClosed);
    }

    [Fact]
    public void CreateRefusesAMappingThatHoldsAPoolUnlessOverwriteIsSet()
    {
        using DaxMapping mapping = NewMapping();
        TestPools.Create(mapping, Layout).Dispose();
        Assert.Throws<PmemException>(() => TestPools.Create(mapping, Layout));
        using PmemPool pool = TestPools.Create(mapping, "other", new PoolCreateOptions { Overwrite = true });
        Assert.Equal("other", pool.Layout);
    }

    [Theory]
    [InlineData("")]
    [InlineData("a\0b")]
    [InlineData("0123456789012345678901234567890123456789012345678901234567890123")]
    public void CreateRefusesABadLayoutName(string layout)
    {
        using DaxMapping mapping = NewMapping();
        ArgumentException e = Assert.Throws<ArgumentException>(() => TestPools.Create(mapping, layout));
        Assert.Equal("layout", e.ParamName);
    }

    [Theory]
    [InlineData(8192L, 0L, "size")]
    [InlineData(65536L, 100L, "reservedLength")]
    [InlineData(65536L, 61440L, "size")]
    public void CreateRefusesGeometryThatDoesNotFit(long length, long reserved, string param)
    {
        using DaxMapping mapping = NewMapping(length);
        ArgumentException e = Assert.Throws<ArgumentException>(() => TestPools.Create(mapping, Layout, new PoolCreateOptions { ReservedLength = reserved }));
        Assert.Equal(param, e.ParamName);
    }

    [Fact]
    public void OpenOfZeroedMemoryNamesTheSignature()
    {
        using DaxMapping mapping = NewMapping();
        PoolFormatException e = Assert.Throws<PoolFormatException>(() => PmemPool.Open(mapping, Layout));
        Assert.Equal(PoolHeaderField.Signature, e.Field);
    }

    [Fact]
    public void OpenOfTooSmallMappingNamesTheSize()
    {
        using DaxMapping mapping = NewMapping(8192);
        PoolFormatException e = Assert.Throws<PoolFormatException>(() => PmemPool.Open(mapping, Layout));
        Assert.Equal(PoolHeaderField.Size, e.Field);
    }

    public static TheoryData<string, PoolHeaderField> FieldFailures => new()
    {
        { "major", PoolHeaderField.MajorVersion },
        { "major0", PoolHeaderField.MajorVersion },
        { "headersize", PoolHeaderField.HeaderSize },
        { "incompat", PoolHeaderField.IncompatFeatures },
        { "endianness", PoolHeaderField.Architecture },
        { "pointer", PoolHeaderField.Architecture },
        { "machine", PoolHeaderField.Architecture },
        { "layout", PoolHeaderField.Layout },
        { "size", PoolHeaderField.Size },
        { "pagesize", PoolHeaderField.PageSize },
        { "reserved", PoolHeaderField.ReservedArea },
        { "data", PoolHeaderField.DataOffset },
        { "root", PoolHeaderField.RootOffset },
        { "state", PoolHeaderField.State },
    };

    [Theory]
    [MemberData(nameof(FieldFailures))]
    public void OpenRefusesEachBadFieldNamingIt(string change, PoolHeaderField field)
    {
        using DaxMapping mapping = NewMapping();
        TestPools.Create(mapping, Layout).Dispose();
        Tamper(mapping, h =>
        {
            switch (change)
            {
                case "major": h.Major = 2; break;
                case "major0": h.Major = 0; break;
                case "headersize": h.HeaderSize = 512; break;
                case "incompat": h.Incompat = 1UL << 40; break;
                case "endianness": h.Endianness = 2; break;
                case "pointer": h.PointerSize = 4; break;
                case "machine": h.Machine = (ushort)(183 + 62 - PoolHeader.HostMachine); break;
                case "layout": h.Layout = "something-else"; break;
                case "size": h.PoolSize = 128 * 1024; break;
                case "pagesize": h.PageSize = 2 << 20; break;
                case "reserved": h.ReservedLength = 100; break;
                case "data": h.DataOffset += 4096; break;
                case "root": h.RootOffset = 4096; break;
                case "state": h.State = 7; break;
            }
        });
        byte[] before = mapping.GetReadOnlySpan(0, 3 * 4096).ToArray();
        PoolFormatException e = Assert.Throws<PoolFormatException>(() => PmemPool.Open(mapping, Layout));
        Assert.Equal(field, e.Field);
        Assert.Contains(field is PoolHeaderField.Layout ? "something-else" : "", e.Message, StringComparison.Ordinal);
        Assert.True(before.AsSpan().SequenceEqual(mapping.GetReadOnlySpan(0, 3 * 4096)), "a failed open wrote to the headers");
    }

    [Fact]
    public void UnknownRoCompatFeatureOpensReadOnlyAndWritesNothing()
    {
        using DaxMapping mapping = NewMapping();
        TestPools.Create(mapping, Layout).Dispose();
        Tamper(mapping, h => h.RoCompat = 1UL << 5);
        byte[] before = mapping.GetReadOnlySpan(0, 8192).ToArray();
        using (PmemPool pool = PmemPool.Open(mapping, Layout))
        {
            Assert.True(pool.IsReadOnly);
            Assert.Contains("0x20", pool.ReadOnlyReason, StringComparison.Ordinal);
            Assert.Throws<InvalidOperationException>(() => pool.SetRoot(0));
            Assert.Throws<InvalidOperationException>(() => PmemLog.Create(pool, pool.DataOffset, 8192));
        }
        Assert.True(before.AsSpan().SequenceEqual(mapping.GetReadOnlySpan(0, 8192)));
    }

    [Fact]
    public void UnknownCompatFeatureIsIgnored()
    {
        using DaxMapping mapping = NewMapping();
        TestPools.Create(mapping, Layout).Dispose();
        Tamper(mapping, h => h.Compat |= 0xF0);
        using PmemPool pool = PmemPool.Open(mapping, Layout);
        Assert.False(pool.IsReadOnly);
        Assert.Equal(PoolFeatures.Directory | PoolFeatures.DurabilityRecorded, pool.Features);
    }

    [Fact]
    public void DamagedPrimaryIsRestoredFromBackupAndReported()
    {
        using DaxMapping mapping = NewMapping();
        TestPools.Create(mapping, Layout).Dispose();
        mapping.GetSpan(100, 1)[0] ^= 0x40;
        using (PmemPool pool = PmemPool.Open(mapping, Layout))
        {
            Assert.Equal(PoolHeaderRepair.PrimaryRestoredFromBackup, pool.HeaderRepair);
            Assert.True(pool.WasCleanlyClosed);
        }
        Assert.True(mapping.GetReadOnlySpan(0, 4096).SequenceEqual(mapping.GetReadOnlySpan(4096, 4096)));
        using PmemPool again = PmemPool.Open(mapping, Layout);
        Assert.Equal(PoolHeaderRepair.None, again.HeaderRepair);
    }

    [Fact]
    public void DamagedBackupIsRestoredFromPrimaryAndReported()
    {
        using DaxMapping mapping = NewMapping();
        TestPools.Create(mapping, Layout).Dispose();
        mapping.GetSpan(PoolHeader.BackupOffset + 3000, 1)[0] ^= 1;
        using (PmemPool pool = PmemPool.Open(mapping, Layout))
        {
            Assert.Equal(PoolHeaderRepair.BackupRestoredFromPrimary, pool.HeaderRepair);
        }
        Assert.True(mapping.GetReadOnlySpan(0, 4096).SequenceEqual(mapping.GetReadOnlySpan(4096, 4096)));
    }

    [Fact]
    public void ReadOnlyOpenReportsTheRepairButWritesNothing()
    {
        using DaxMapping mapping = NewMapping();
        TestPools.Create(mapping, Layout).Dispose();
        mapping.GetSpan(8, 1)[0] ^= 0x10;
        byte[] before = mapping.GetReadOnlySpan(0, 8192).ToArray();
        using (PmemPool pool = PmemPool.Open(mapping, Layout, new PoolOpenOptions { ReadOnly = true }))
        {
            Assert.Equal(PoolHeaderRepair.PrimaryRestoredFromBackup, pool.HeaderRepair);
            Assert.True(pool.IsReadOnly);
        }
        Assert.True(before.AsSpan().SequenceEqual(mapping.GetReadOnlySpan(0, 8192)));
    }

    [Fact]
    public void BothCopiesDamagedNamesTheChecksum()
    {
        using DaxMapping mapping = NewMapping();
        TestPools.Create(mapping, Layout).Dispose();
        mapping.GetSpan(300, 1)[0] ^= 1;
        mapping.GetSpan(4096 + 300, 1)[0] ^= 1;
        PoolFormatException e = Assert.Throws<PoolFormatException>(() => PmemPool.Open(mapping, Layout));
        Assert.Equal(PoolHeaderField.Checksum, e.Field);
    }

    [Fact]
    public void SetRootRefusesOffsetsOutsideTheDataArea()
    {
        using DaxMapping mapping = NewMapping();
        using PmemPool pool = TestPools.Create(mapping, Layout);
        Assert.Equal("offset", Assert.Throws<ArgumentOutOfRangeException>(() => pool.SetRoot(4096)).ParamName);
        Assert.Equal("offset", Assert.Throws<ArgumentOutOfRangeException>(() => pool.SetRoot(pool.Size)).ParamName);
        pool.SetRoot(pool.Size - 8);
        Assert.Equal(pool.Size - 8, pool.RootOffset);
    }

    [Fact]
    public void DirtyShutdownCountThatMovedIsDetectedOnFixtureTree()
    {
        using var dir = new TempDirectory();
        string sys = dir.File("sys");
        TwoRegions(sys);
        using DaxMapping mapping = NewMapping();
        using (PmemPool pool = TestPools.Create(mapping, Layout, new PoolCreateOptions { SysfsRoot = sys, NvdimmRegion = "region0" }))
        {
            Assert.Equal(13UL, pool.DirtyShutdownCount); // nmem0 and nmem1 only: nmem2 and nmem3 are region1's
        }
        var open = new PoolOpenOptions { SysfsRoot = sys, NvdimmRegion = "region0" };
        using (PmemPool same = PmemPool.Open(mapping, Layout, open))
        {
            Assert.False(same.DirtyShutdownDetected);
            Assert.False(same.NeedsRecovery);
        }
        // A dirty shutdown of another region's DIMM does not concern the pool.
        WriteCount(sys, "nmem3", "1000");
        using (PmemPool other = PmemPool.Open(mapping, Layout, open))
        {
            Assert.False(other.DirtyShutdownDetected);
            Assert.Equal(13UL, other.DirtyShutdownCount);
        }
        WriteCount(sys, "nmem1", "11\n");
        using (PmemPool moved = PmemPool.Open(mapping, Layout, open))
        {
            Assert.True(moved.WasCleanlyClosed);
            Assert.True(moved.DirtyShutdownDetected);
            Assert.True(moved.NeedsRecovery);
            Assert.Equal(14UL, moved.DirtyShutdownCount);
        }
        using PmemPool recorded = PmemPool.Open(mapping, Layout, open);
        Assert.False(recorded.DirtyShutdownDetected);
    }

    [Fact]
    public void DirtyShutdownCountCoversExactlyTheDimmsOfTheRegion()
    {
        using var dir = new TempDirectory();
        string sys = dir.File("sys");
        TwoRegions(sys);
        Assert.Equal(13UL, DirtyShutdownCounter.Read(sys, "region0"));
        Assert.Equal(105UL, DirtyShutdownCounter.Read(sys, "region1"));
        Assert.Null(DirtyShutdownCounter.Read(sys, "region7")); // no such region
        Assert.Null(DirtyShutdownCounter.Read(sys, null)); // memory or a file off pmem: no region, no count
        Assert.Null(DirtyShutdownCounter.Read(sys, "../region0"));
        // A pool on no region has no count, whatever the machine's DIMMs say.
        using DaxMapping mapping = NewMapping();
        Assert.Null(mapping.NvdimmRegion);
        using PmemPool pool = TestPools.Create(mapping, Layout, new PoolCreateOptions { SysfsRoot = sys });
        Assert.Null(pool.DirtyShutdownCount);
    }

    [Fact]
    public void DirtyShutdownCountIsUnknownWithoutNmemsOrWithGarbage()
    {
        using var dir = new TempDirectory();
        Assert.Null(DirtyShutdownCounter.Read(dir.Path, "region0"));
        TwoRegions(dir.Path);
        Assert.Equal(13UL, DirtyShutdownCounter.Read(dir.Path, "region0"));
        WriteCount(dir.Path, "nmem1", "-1");
        Assert.Null(DirtyShutdownCounter.Read(dir.Path, "region0"));
        Assert.Equal(105UL, DirtyShutdownCounter.Read(dir.Path, "region1")); // the other region is unaffected
        File.Delete(Path.Combine(dir.Path, "bus", "nd", "devices", "nmem2", "nfit", "dirty_shutdown"));
        Assert.Null(DirtyShutdownCounter.Read(dir.Path, "region1")); // a DIMM without a count: unknown, not a partial sum
        using DaxMapping mapping = NewMapping();
        using PmemPool pool = TestPools.Create(mapping, Layout, new PoolCreateOptions { SysfsRoot = dir.Path, NvdimmRegion = "region0" });
        Assert.Null(pool.DirtyShutdownCount);
    }

    // Two interleave sets as the kernel lays them out: region0 over nmem0 and nmem1, region1 over nmem2 and nmem3.
    private static void TwoRegions(string sys)
    {
        WriteCount(sys, "nmem0", "3");
        WriteCount(sys, "nmem1", "10");
        WriteCount(sys, "nmem2", "100");
        WriteCount(sys, "nmem3", "5");
        WriteMapping(sys, "region0", 0, "nmem0,0,4294967296,0");
        WriteMapping(sys, "region0", 1, "nmem1,0,4294967296,1");
        WriteMapping(sys, "region1", 0, "nmem2,0,4294967296,0");
        WriteMapping(sys, "region1", 1, "nmem3,0,4294967296,1");
    }

    private static void WriteCount(string sys, string nmem, string text)
    {
        string nfit = Path.Combine(sys, "bus", "nd", "devices", nmem, "nfit");
        Directory.CreateDirectory(nfit);
        File.WriteAllText(Path.Combine(nfit, "dirty_shutdown"), text);
    }

    private static void WriteMapping(string sys, string region, int index, string text)
    {
        string dir = Path.Combine(sys, "bus", "nd", "devices", region);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "mapping" + index.ToString(System.Globalization.CultureInfo.InvariantCulture)), text + "\n");
    }

    [Fact]
    public void PoolOnPageCacheFileSurvivesReopenAndIsMode0600()
    {
        using var dir = new TempDirectory();
        string path = dir.File("pool");
        using (PmemPool pool = TestPools.CreateFile(path, 64 * 1024, Layout))
        {
            pool.Mapping.Write("durable"u8, pool.DataOffset);
            pool.SetRoot(pool.DataOffset);
        }
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        using (PmemPool pool = PmemPool.OpenFile(path, Layout))
        {
            Assert.True(pool.WasCleanlyClosed);
            Assert.True(pool.Mapping.GetReadOnlySpan(pool.RootOffset, 7).SequenceEqual("durable"u8));
        }
        Assert.Equal(PoolHeaderField.Layout, Assert.Throws<PoolFormatException>(() => PmemPool.OpenFile(path, "wrong")).Field);
        using PmemPool readOnly = PmemPool.OpenFile(path, Layout, new PoolOpenOptions { ReadOnly = true });
        Assert.True(readOnly.IsReadOnly);
        Assert.True(readOnly.Mapping.IsReadOnly);
    }

    [Fact]
    public void PoolOnEmulatedDeviceAndOnLabelledRange()
    {
        using var dir = new TempDirectory();
        string path = dir.File("dev.emu");
        using (DaxDevice device = DaxDevice.CreateEmulated(path, 4L << 20, PageSize.Pte))
        using (DaxRangeAllocator ranges = DaxRangeAllocator.Format(device))
        {
            ranges.Allocate("pool", 1L << 20);
            using PmemPool pool = TestPools.Create(ranges.Map("pool"), Layout, ownsMapping: true);
            Assert.Equal(1L << 20, pool.Size);
            PmemLog log = PmemLog.Create(pool, pool.DataOffset, 64 * 1024);
            log.Append("on a range"u8);
            pool.SetRoot(log.Offset);
        }
        using (DaxDevice device = DaxDevice.OpenEmulated(path))
        using (DaxRangeAllocator ranges = DaxRangeAllocator.Open(device))
        using (PmemPool pool = PmemPool.Open(ranges.Map("pool"), Layout, ownsMapping: true))
        {
            Assert.True(pool.WasCleanlyClosed);
            PmemLog log = PmemLog.Open(pool, pool.RootOffset);
            LogReader reader = log.ReadAll();
            Assert.True(reader.MoveNext());
            Assert.True(reader.Current.Payload.SequenceEqual("on a range"u8));
        }
        string whole = dir.File("whole.emu");
        using (DaxDevice device = DaxDevice.CreateEmulated(whole, 1L << 20, PageSize.Pte))
        using (PmemPool pool = TestPools.Create(device.Map(), Layout, ownsMapping: true))
        {
            Assert.Equal(1L << 20, pool.Size);
        }
        using (DaxDevice device = DaxDevice.OpenEmulated(whole))
        using (PmemPool pool = PmemPool.Open(device.Map(), Layout, ownsMapping: true))
        {
            Assert.True(pool.WasCleanlyClosed);
        }
    }

    [Fact]
    public void HeaderChecksumCoversEveryByteButItself()
    {
        byte[] block = new byte[PoolHeader.Size];
        new PoolHeader { Major = 1, Layout = "x" }.WriteTo(block);
        Assert.True(PoolHeader.ChecksumMatches(block));
        block[PoolHeader.ChecksumOffset - 1] ^= 1;
        Assert.False(PoolHeader.ChecksumMatches(block));
    }
}
