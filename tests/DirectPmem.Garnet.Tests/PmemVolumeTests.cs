using DirectPmem.Garnet.Tests.Support;
using DirectPmem.Mapping;
using Tsavorite.core;
using Xunit;

namespace DirectPmem.Garnet.Tests;

public sealed class PmemVolumeTests : IDisposable
{
    private const long Chunk = 64 * 1024;
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private EmulatedVolume NewVolume(long size = 8L << 20, PmemVolumeOptions? options = null) =>
        EmulatedVolume.Create(_dir.File("dev.dax"), size, options);

    internal static IDevice Device(PmemVolume volume, string dir = "Store", string file = "hlog", long segmentSize = -1)
    {
        IDevice device = volume.CreateDeviceFactoryCreator().Create("base").Get(new FileDescriptor(dir, file));
        device.Initialize(segmentSize);
        return device;
    }

    [Fact]
    public void WriteThenReadRoundTripsAcrossChunkBoundaries()
    {
        using EmulatedVolume v = NewVolume();
        using IDevice device = Device(v.Volume);
        byte[] data = DeviceIo.Pattern((int)(2 * Chunk + 4096), 1);
        ulong offset = (ulong)(Chunk - 1024); // starts 1 KiB before the first chunk boundary

        DeviceIo.Completion write = DeviceIo.Write(device, 0, offset, data);
        Assert.Equal(0u, write.ErrorCode);
        Assert.Equal((uint)data.Length, write.Bytes);
        Assert.Equal(1, write.Calls);

        (DeviceIo.Completion read, byte[] back) = DeviceIo.Read(device, 0, offset, data.Length);
        Assert.Equal(0u, read.ErrorCode);
        Assert.Equal((uint)data.Length, read.Bytes);
        Assert.Equal(data, back);
    }

    [Fact]
    public void CompletionRunsInlineOnTheCallingThread()
    {
        using EmulatedVolume v = NewVolume();
        using IDevice device = Device(v.Volume);
        DeviceIo.Completion write = DeviceIo.Write(device, 0, 0, new byte[512]);
        Assert.Equal(Environment.CurrentManagedThreadId, write.ThreadId);
        Assert.Equal(1, write.Calls);
    }

    [Fact]
    public void UnwrittenBytesReadAsZerosIncludingTheRestOfAPartlyWrittenChunk()
    {
        using EmulatedVolume v = NewVolume();
        using IDevice device = Device(v.Volume);
        Assert.Equal(0u, DeviceIo.Write(device, 0, 4096, DeviceIo.Pattern(512, 2)).ErrorCode);

        (DeviceIo.Completion read, byte[] back) = DeviceIo.Read(device, 0, 0, (int)Chunk);
        Assert.Equal(0u, read.ErrorCode);
        Assert.All(back[..4096], b => Assert.Equal(0, b));
        Assert.All(back[(4096 + 512)..], b => Assert.Equal(0, b));

        (read, back) = DeviceIo.Read(device, 3, 0, 1024); // a segment never written
        Assert.Equal(0u, read.ErrorCode);
        Assert.All(back, b => Assert.Equal(0, b));
    }

    [Fact]
    public void DataAndNamesSurviveReopeningTheVolume()
    {
        byte[] data = DeviceIo.Pattern(3 * 4096, 3);
        string path;
        using (EmulatedVolume v = NewVolume())
        {
            path = v.Path;
            using IDevice device = Device(v.Volume, "cpr-checkpoints/abc", "info.dat");
            Assert.Equal(0u, DeviceIo.Write(device, 0, 8192, data).ErrorCode);
        }
        using EmulatedVolume reopened = EmulatedVolume.Open(path);
        Assert.Equal(["base/cpr-checkpoints/abc/info.dat"], reopened.Volume.GetDeviceNames());
        using IDevice again = Device(reopened.Volume, "cpr-checkpoints/abc", "info.dat");
        (DeviceIo.Completion read, byte[] back) = DeviceIo.Read(again, 0, 8192, data.Length);
        Assert.Equal(0u, read.ErrorCode);
        Assert.Equal(data, back);
        Assert.Equal(Chunk, again.GetFileSize(0));
        Assert.Equal(0, again.GetFileSize(1));
    }

    [Theory]
    [InlineData(100UL, 512)]
    [InlineData(0UL, 100)]
    [InlineData(511UL, 1024)]
    public void MisalignedIoFailsThroughTheCallbackWithEinvalAndWritesNothing(ulong offset, int length)
    {
        using EmulatedVolume v = NewVolume();
        using IDevice device = Device(v.Volume);
        long free = v.Volume.FreeBytes;

        DeviceIo.Completion write = DeviceIo.Write(device, 0, offset, new byte[length]);
        Assert.Equal(22u, write.ErrorCode);
        Assert.Equal(0u, write.Bytes);
        PmemVolumeException e = Assert.IsType<PmemVolumeException>(write.Exception);
        Assert.Equal(PmemVolumeError.Unaligned, e.Error);
        Assert.Contains("512-byte sector", e.Message, StringComparison.Ordinal);
        Assert.Contains($"offset {offset}", e.Message, StringComparison.Ordinal);
        Assert.Equal(free, v.Volume.FreeBytes);

        Assert.Equal(22u, DeviceIo.Read(device, 0, offset, length).Completion.ErrorCode);
    }

    [Fact]
    public void WritePastTheSegmentSizeFailsWithEinval()
    {
        using EmulatedVolume v = NewVolume();
        using IDevice device = Device(v.Volume, segmentSize: 1 << 20);
        DeviceIo.Completion write = DeviceIo.Write(device, 0, (1 << 20) - 512, new byte[1024]);
        Assert.Equal(22u, write.ErrorCode);
        Assert.Equal(PmemVolumeError.OutOfRange, Assert.IsType<PmemVolumeException>(write.Exception).Error);
    }

    [Fact]
    public void AFullVolumeFailsWritesWithEnospcAndKeepsEverythingAlreadyWritten()
    {
        using EmulatedVolume v = NewVolume(2L << 20, new PmemVolumeOptions { SlotCount = 16 });
        using IDevice device = Device(v.Volume);
        long chunks = v.Volume.ChunkCount;
        var written = new List<byte[]>();
        for (int i = 0; i < chunks; i++)
        {
            byte[] data = DeviceIo.Pattern((int)Chunk, 100 + i);
            Assert.Equal(0u, DeviceIo.Write(device, 0, (ulong)(i * Chunk), data).ErrorCode);
            written.Add(data);
        }
        Assert.Equal(0, v.Volume.FreeBytes);

        DeviceIo.Completion full = DeviceIo.Write(device, 1, 0, new byte[4096]);
        Assert.Equal(28u, full.ErrorCode);
        PmemVolumeException e = Assert.IsType<PmemVolumeException>(full.Exception);
        Assert.Equal(PmemVolumeError.Full, e.Error);
        Assert.Contains("is full", e.Message, StringComparison.Ordinal);

        // A write into an allocated chunk still succeeds, and every acknowledged byte is there.
        Assert.Equal(0u, DeviceIo.Write(device, 0, 0, written[0]).ErrorCode);
        for (int i = 0; i < chunks; i++)
            Assert.Equal(written[i], DeviceIo.Read(device, 0, (ulong)(i * Chunk), (int)Chunk).Data);
    }

    [Fact]
    public void RemoveSegmentAndTruncationFreeTheSpace()
    {
        using EmulatedVolume v = NewVolume();
        var epoch = new LightEpoch();
        using IDevice device = v.Volume.CreateDeviceFactoryCreator().Create("base").Get(new FileDescriptor("Store", "hlog"));
        device.Initialize(1 << 20, epoch);
        long free = v.Volume.FreeBytes;
        for (int segment = 0; segment < 3; segment++)
            Assert.Equal(0u, DeviceIo.Write(device, segment, 0, new byte[2 * Chunk]).ErrorCode);
        Assert.Equal(free - 6 * Chunk, v.Volume.FreeBytes);

        device.RemoveSegment(1);
        Assert.Equal(free - 4 * Chunk, v.Volume.FreeBytes);
        Assert.Equal(0, device.GetFileSize(1));

        device.TruncateUntilSegment(3);
        Assert.Equal(free, v.Volume.FreeBytes);
        Assert.Empty(v.Volume.GetDeviceNames());
    }

    [Fact]
    public void ListContentsShowsDirectoriesAndFileSegmentsNewestFirst()
    {
        using EmulatedVolume v = NewVolume();
        INamedDeviceFactory factory = v.Volume.CreateDeviceFactoryCreator().Create("/ckpt/");
        foreach ((string dir, string file) in new[] { ("cpr-checkpoints/old", "info.dat"), ("cpr-checkpoints/new", "info.dat"), ("log-commits", "commit.1"), ("log-commits", "commit.2") })
        {
            using IDevice d = factory.Get(new FileDescriptor(dir, file));
            Assert.Equal(0u, DeviceIo.Write(d, 0, 0, new byte[512]).ErrorCode);
        }

        Assert.Equal(["new", "old"], factory.ListContents("cpr-checkpoints").Select(f => f.directoryName));
        Assert.All(factory.ListContents("cpr-checkpoints"), f => Assert.Equal("", f.fileName));
        Assert.Equal(["commit.2.0", "commit.1.0"], factory.ListContents("log-commits").Select(f => f.fileName));
        // Tsavorite parses the commit number as the second-last dotted part.
        Assert.Equal([2L, 1L], new DefaultCheckpointNamingScheme().Let(s => factory.ListContents("log-commits").Select(s.CommitNumber)));
        Assert.Equal(["log-commits", "cpr-checkpoints"], factory.ListContents("").Select(f => f.directoryName));
        Assert.Empty(factory.ListContents("nothing-here"));
    }

    [Fact]
    public void DeleteRemovesAFileOrAWholeDirectory()
    {
        using EmulatedVolume v = NewVolume();
        INamedDeviceFactory factory = v.Volume.CreateDeviceFactoryCreator().Create("c");
        long free = v.Volume.FreeBytes;
        foreach ((string dir, string file) in new[] { ("index-checkpoints/t1", "info.dat"), ("index-checkpoints/t1", "ht.dat"), ("index-checkpoints/t2", "info.dat"), ("log-commits", "commit.7") })
        {
            using IDevice d = factory.Get(new FileDescriptor(dir, file));
            Assert.Equal(0u, DeviceIo.Write(d, 0, 0, new byte[512]).ErrorCode);
        }

        factory.Delete(new FileDescriptor("log-commits", "commit.7"));
        Assert.Empty(factory.ListContents("log-commits"));
        factory.Delete(new FileDescriptor("index-checkpoints/t1", null));
        Assert.Equal(["c/index-checkpoints/t2/info.dat"], v.Volume.GetDeviceNames());
        factory.Delete(new FileDescriptor { directoryName = "" });
        Assert.Empty(v.Volume.GetDeviceNames());
        Assert.Equal(free, v.Volume.FreeBytes);
    }

    [Fact]
    public void ChunksLeftByACrashBetweenASlotDeleteAndTheirReleaseAreReclaimedOnOpen()
    {
        string path;
        long free;
        using (EmulatedVolume v = NewVolume())
        {
            path = v.Path;
            free = v.Volume.FreeBytes;
            using IDevice device = Device(v.Volume);
            Assert.Equal(0u, DeviceIo.Write(device, 0, 0, new byte[3 * Chunk]).ErrorCode);
            // The crash: the slot's commit word is published 0, its chunks' owner words are not.
            v.Volume.Mapping.Publish(v.Volume.Structure.BodyOffset + 0 * PmemVolume.SlotSize, 0);
        }
        using EmulatedVolume reopened = EmulatedVolume.Open(path);
        Assert.Empty(reopened.Volume.GetDeviceNames());
        Assert.Equal(free, reopened.Volume.FreeBytes);
    }

    [Fact]
    public void AVolumeHeaderCopyDamagedIsRestoredFromTheOtherAndBothDamagedIsRefusedNamingTheHeader()
    {
        string path;
        long header;
        using (EmulatedVolume v = NewVolume())
        {
            path = v.Path;
            header = v.Volume.Structure.Entry.Offset;
        }
        (PmemFile file, DaxMapping map) = EmulatedVolume.MapRaw(path);
        using (file)
        using (map)
        {
            map.GetSpan(header + 128 + 8, 1)[0] ^= 0xFF; // the chunk size in the primary copy's parameters
            map.Persist(header + 128 + 8, 1);
        }
        using (EmulatedVolume reopened = EmulatedVolume.Open(path))
        {
            Assert.Equal(DirectPmem.Storage.PoolHeaderRepair.PrimaryRestoredFromBackup, reopened.Volume.Structure.HeaderRepair);
            Assert.Equal(Chunk, reopened.Volume.ChunkSize);
        }
        (file, map) = EmulatedVolume.MapRaw(path);
        using (file)
        using (map)
        {
            foreach (long copy in (long[])[header, header + 4096])
            {
                map.GetSpan(copy + 128 + 8, 1)[0] ^= 0xFF;
                map.Persist(copy + 128 + 8, 1);
            }
        }
        PmemVolumeException e = Assert.Throws<PmemVolumeException>(() => EmulatedVolume.Open(path));
        Assert.Equal(PmemVolumeError.Corrupt, e.Error);
        Assert.Equal(DirectPmem.Storage.PoolHeaderField.StructureHeader, Assert.IsType<DirectPmem.Storage.PoolFormatException>(e.InnerException).Field);
        Assert.Contains("either copy of the structure header of GarnetVolume \"garnet\" at [0x", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ACorruptSlotIsRefusedRatherThanDropped()
    {
        string path;
        long slots;
        using (EmulatedVolume v = NewVolume())
        {
            path = v.Path;
            slots = v.Volume.Structure.BodyOffset;
            using IDevice device = Device(v.Volume);
            Assert.Equal(0u, DeviceIo.Write(device, 0, 0, new byte[512]).ErrorCode);
            v.Volume.Mapping.GetSpan(slots + 30, 1)[0] ^= 0x01; // a byte of the name
            v.Volume.Mapping.Persist(slots + 30, 1);
        }
        PmemVolumeException e = Assert.Throws<PmemVolumeException>(() => EmulatedVolume.Open(path));
        Assert.Equal(PmemVolumeError.Corrupt, e.Error);
        Assert.Contains($"offset {slots}", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CreateRefusesAFormattedMappingAndOpenRefusesAnUnformattedOne()
    {
        string path;
        using (EmulatedVolume v = NewVolume())
            path = v.Path;
        (PmemFile file, DaxMapping map) = EmulatedVolume.MapRaw(path);
        using (file)
        using (map)
        {
            Assert.Equal(PmemVolumeError.AlreadyFormatted, Assert.Throws<PmemVolumeException>(() => PmemVolume.Create(map, ownsMapping: false)).Error);
            map.Fill(0, 8192, 0); // both pool header copies
            Assert.Equal(PmemVolumeError.NotFormatted, Assert.Throws<PmemVolumeException>(() => PmemVolume.Open(map, ownsMapping: false)).Error);
        }
    }

    [Fact]
    public void AMappingTooSmallForOneChunkIsRefused()
    {
        using var map = DaxMapping.CreateAnonymous(1L << 20);
        PmemVolumeException e = Assert.Throws<PmemVolumeException>(() => PmemVolume.Create(map, new PmemVolumeOptions { SlotCount = 4096 }, ownsMapping: false));
        Assert.Equal(PmemVolumeError.TooSmall, e.Error);
        Assert.Equal(28, e.Errno);
    }

    [Theory]
    [InlineData(1000L)]
    [InlineData(3L * 4096)]
    [InlineData(128L << 20)]
    public void ABadChunkSizeIsRefusedByName(long chunkSize)
    {
        using var map = DaxMapping.CreateAnonymous(4L << 20);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => PmemVolume.Create(map, new PmemVolumeOptions { ChunkSize = chunkSize }, ownsMapping: false));
        Assert.Equal("options", e.ParamName);
    }

    [Fact]
    public void DevicesReportTruthfulSectorSizeAndCapacityAndRefuseSegmentsLargerThanTheVolume()
    {
        using EmulatedVolume v = NewVolume(8L << 20);
        IDevice device = v.Volume.CreateDeviceFactoryCreator().Create("").Get(new FileDescriptor("Store", "hlog"));
        Assert.Equal(512u, device.SectorSize);
        Assert.True(device.Capacity <= v.Volume.DataCapacity);
        Assert.True(device.Capacity * 2 > v.Volume.DataCapacity);
        Assert.True(System.Numerics.BitOperations.IsPow2(device.Capacity));
        Assert.Equal(512u, ((PmemNamedDeviceFactory)v.Volume.CreateDeviceFactoryCreator().Create("")).GetSectorSize(default));

        PmemVolumeException e = Assert.Throws<PmemVolumeException>(() => device.Initialize(1L << 30));
        Assert.Equal(PmemVolumeError.TooSmall, e.Error);
        Assert.Contains("--segment", e.Message, StringComparison.Ordinal);
        device.Initialize(1L << 20);
    }

    [Fact]
    public void NamesThatClimbOrAreTooLongAreRefused()
    {
        using EmulatedVolume v = NewVolume();
        INamedDeviceFactory factory = v.Volume.CreateDeviceFactoryCreator().Create("base");
        Assert.Equal(PmemVolumeError.BadName, Assert.Throws<PmemVolumeException>(() => factory.Get(new FileDescriptor("../x", "f"))).Error);
        Assert.Equal(PmemVolumeError.BadName, Assert.Throws<PmemVolumeException>(() => factory.Get(new FileDescriptor("d", new string('n', 300)))).Error);
    }

    [Fact]
    public void IoAfterTheVolumeIsClosedFailsThroughTheCallbackWithEio()
    {
        EmulatedVolume v = NewVolume();
        IDevice device = Device(v.Volume);
        Assert.Equal(0u, DeviceIo.Write(device, 0, 0, new byte[512]).ErrorCode);
        v.Dispose();

        DeviceIo.Completion write = DeviceIo.Write(device, 0, 0, new byte[512]);
        Assert.Equal(5u, write.ErrorCode);
        Assert.Equal(1, write.Calls);
        Assert.IsType<ObjectDisposedException>(write.Exception);
        Assert.Equal(5u, DeviceIo.Read(device, 0, 0, 512).Completion.ErrorCode);
        device.RemoveSegment(0); // no throw: the closed volume is left as it is
    }

    [Fact]
    public void ConcurrentWritersToOneSegmentEachKeepTheirBytes()
    {
        using EmulatedVolume v = NewVolume(16L << 20);
        using IDevice device = Device(v.Volume);
        const int Writers = 4, PerWriter = 32, Size = 8192;
        Parallel.For(0, Writers, w =>
        {
            for (int i = 0; i < PerWriter; i++)
            {
                ulong offset = (ulong)((i * Writers + w) * Size);
                Assert.Equal(0u, DeviceIo.Write(device, 0, offset, DeviceIo.Pattern(Size, (w * 1000) + i)).ErrorCode);
            }
        });
        for (int w = 0; w < Writers; w++)
        {
            for (int i = 0; i < PerWriter; i++)
                Assert.Equal(DeviceIo.Pattern(Size, (w * 1000) + i), DeviceIo.Read(device, 0, (ulong)((i * Writers + w) * Size), Size).Data);
        }
    }
}

internal static class FunctionalExtensions
{
    public static TResult Let<T, TResult>(this T value, Func<T, TResult> f) => f(value);
}
