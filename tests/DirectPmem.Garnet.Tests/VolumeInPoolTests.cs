using System.Buffers.Binary;
using System.IO.Hashing;
using DirectPmem.Driver;
using DirectPmem.Garnet.Tests.Support;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Storage;
using DirectPmem.Storage.Transactions;
using Tsavorite.core;
using Xunit;

namespace DirectPmem.Garnet.Tests;

/// <summary>The volume as a named structure of a DirectPmem.Storage pool: sharing, inspection, shutdown state, old-format refusal.</summary>
public sealed class VolumeInPoolTests : IDisposable
{
    private const long Chunk = 64 * 1024;
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void AnOpenWhoseSlotTableCannotBeReadIsAMediaErrorNotACrash()
    {
        if (!DaxMapping.IsReadSafeSupported)
            Assert.Skip("DaxMapping.ReadSafe is unavailable here (it needs x86-64): without it a read of a truncated page raises SIGBUS");
        (string? root, string reason) = PageCacheProbe.Found;
        if (root is null)
            Assert.Skip(reason);
        using var dir = new TempDirectory(root);
        string path = dir.File("media.pool");
        long body;
        using (PmemPool pool = PmemPool.CreateFile(path, 16L << 20, "app", new PoolCreateOptions { AllowVolatile = true }))
        using (PmemVolume volume = PmemVolume.CreateInPool(pool, "garnet", 8L << 20, new PmemVolumeOptions { ChunkSize = Chunk, SlotCount = 64 }))
        using (IDevice device = PmemVolumeTests.Device(volume))
        {
            Assert.Equal(0u, DeviceIo.Write(device, 0, 0, DeviceIo.Pattern(4096, 1)).ErrorCode);
            body = volume.Structure.BodyOffset;
        }
        using PmemFile file = PmemFile.Open(path, writable: true);
        using DaxMapping map = file.Map();
        using PmemPool reopened = PmemPool.Open(map, "app");
        // The file now ends where the volume's body starts: the slot table is past its end.
        Truncation.Truncate(path, body);
        for (int attempt = 0; attempt < 2; attempt++)
        {
            PmemVolumeException e = Assert.Throws<PmemVolumeException>(() => PmemVolume.OpenInPool(reopened, "garnet"));
            Assert.Equal(PmemVolumeError.MediaError, e.Error);
            Assert.Contains($"(MediaError at offset {body}): Slot 0 at offset {body} cannot be read: it met a page past the end of the file", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void ALogAHeapAndAVolumeShareOnePoolAndEachReopensWithItsData()
    {
        string path = _dir.File("shared.pool");
        byte[] data = DeviceIo.Pattern((int)(2 * Chunk + 4096), 5);
        long lsn;
        using (PmemPool pool = PmemPool.CreateFile(path, 32L << 20, "app", new PoolCreateOptions { AllowVolatile = true }) /* the test directory may be on tmpfs */)
        {
            using PmemLog log = pool.CreateLog("wal", 1L << 20);
            lsn = log.Append("record"u8);
            pool.CreateHeap("heap", 4L << 20).Dispose();
            using PmemVolume volume = PmemVolume.CreateInPool(pool, "garnet", 8L << 20, new PmemVolumeOptions { ChunkSize = Chunk, SlotCount = 64 });
            Assert.Same(pool, volume.Pool);
            using IDevice device = PmemVolumeTests.Device(volume);
            Assert.Equal(0u, DeviceIo.Write(device, 0, 0, data).ErrorCode);
            Assert.Equal(
                [("wal", PoolStructureKind.Log), ("heap", PoolStructureKind.TransactionalHeap), ("garnet", PoolStructureKind.GarnetVolume)],
                pool.Structures.Select(e => (e.Name, e.Kind)).ToArray());
            // The volume takes its range and no more: the structures do not overlap.
            PoolDirectoryEntry v = volume.Structure.Entry;
            Assert.Equal(8L << 20, v.Length);
            Assert.All(pool.Structures.Where(e => e.Name != "garnet"), e => Assert.True(e.Offset + e.Length <= v.Offset || v.Offset + v.Length <= e.Offset, $"{e} overlaps {v}"));
        }
        using (PmemPool pool = PmemPool.OpenFile(path, "app"))
        {
            Assert.True(pool.WasCleanlyClosed);
            using PmemLog log = pool.OpenLog("wal");
            byte[] record = new byte[6];
            Assert.Equal(6, log.Read(lsn, record));
            Assert.Equal("record"u8.ToArray(), record);
            using TransactionalHeap heap = pool.OpenHeap("heap");
            using PmemVolume volume = PmemVolume.OpenInPool(pool, "garnet");
            Assert.Equal(Chunk, volume.ChunkSize);
            Assert.Equal(64, volume.SlotCount);
            using IDevice device = PmemVolumeTests.Device(volume);
            (DeviceIo.Completion read, byte[] back) = DeviceIo.Read(device, 0, 0, data.Length);
            Assert.Equal(0u, read.ErrorCode);
            Assert.Equal(data, back);

            // A name of another kind is no volume.
            PmemVolumeException e = Assert.Throws<PmemVolumeException>(() => PmemVolume.OpenInPool(pool, "wal"));
            Assert.Equal(PmemVolumeError.NotFormatted, e.Error);
            Assert.Equal(PoolDirectoryError.WrongKind, Assert.IsType<PoolDirectoryException>(e.InnerException).Error);
        }
    }

    [Fact]
    public void TheVolumeIsSeenThroughThePoolsPublicInspection()
    {
        string path;
        using (EmulatedVolume v = EmulatedVolume.Create(_dir.File("dev.dax"), 8L << 20, new PmemVolumeOptions { ChunkSize = Chunk, SlotCount = 32 }))
        {
            path = v.Path;
            Assert.Equal(PmemVolume.PoolLayout, v.Volume.Pool.Layout);
        }
        (PmemFile file, DaxMapping map) = EmulatedVolume.MapRaw(path);
        using (file)
        using (map)
        {
            PoolInspection pool = PoolInspector.InspectPool(map, PmemVolume.PoolLayout);
            Assert.True(pool.Opens, string.Join("; ", pool.Problems));
            PoolDirectoryEntry entry = Assert.Single(pool.Structures);
            Assert.Equal((PmemVolume.DefaultName, PoolStructureKind.GarnetVolume), (entry.Name, entry.Kind));
            PoolStructureInspection header = PoolInspector.InspectStructure(map, pool, entry);
            Assert.True(header.Opens, string.Join("; ", header.Problems));
            Assert.Equal(("intact", "intact"), (header.PrimaryState, header.BackupState));
            Assert.Equal(Chunk, BinaryPrimitives.ReadInt64LittleEndian(header.Parameters[8..]));

            // A torn backup copy is reported as repairable, the way the pool's own copies are.
            map.GetSpan(entry.Offset + 4096 + 200, 1)[0] ^= 0x10;
            PoolStructureInspection torn = PoolInspector.InspectStructure(map, pool, entry);
            Assert.True(torn.Opens);
            PoolProblem problem = Assert.Single(torn.Problems);
            Assert.Equal((PoolHeaderField.StructureHeader, PoolProblemSeverity.Repairable), (problem.Field, problem.Severity));
            Assert.Contains("backup copy", problem.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void AVolumeLeftOpenByACrashReopensWithItsDataAndThePoolSaysItWasNotClosedCleanly()
    {
        string path;
        using (EmulatedVolume v = EmulatedVolume.Create(_dir.File("dev.dax"), 8L << 20))
            path = v.Path;
        byte[] data = DeviceIo.Pattern(3 * 4096, 9);
        (PmemFile file, DaxMapping map) = EmulatedVolume.MapRaw(path);
        using (file)
        {
            // The crash: the volume (and its pool) are never disposed; only the mapping goes.
            PmemVolume crashed = PmemVolume.Open(map, ownsMapping: false);
            Assert.True(crashed.Pool.WasCleanlyClosed);
            IDevice device = PmemVolumeTests.Device(crashed);
            Assert.Equal(0u, DeviceIo.Write(device, 0, 0, data).ErrorCode);
            map.Dispose();
        }
        using EmulatedVolume reopened = EmulatedVolume.Open(path);
        Assert.False(reopened.Volume.Pool.WasCleanlyClosed);
        Assert.True(reopened.Volume.Pool.NeedsRecovery);
        using IDevice again = PmemVolumeTests.Device(reopened.Volume);
        (DeviceIo.Completion read, byte[] back) = DeviceIo.Read(again, 0, 0, data.Length);
        Assert.Equal(0u, read.ErrorCode);
        Assert.Equal(data, back);
    }

    [Fact]
    public void AVolumeOnVolatileMemoryIsRefusedUnlessAllowedAndThePoolRecordsTheChoice()
    {
        using DaxMapping map = DaxMapping.CreateAnonymous(4L << 20);
        var options = new PmemVolumeOptions { ChunkSize = Chunk, SlotCount = 16 };
        PoolVolatileBackingException e = Assert.Throws<PoolVolatileBackingException>(() => PmemVolume.Create(map, options, ownsMapping: false));
        Assert.Equal(MappingBacking.Anonymous, e.Backing);
        Assert.Contains("AllowVolatile", e.Message, StringComparison.Ordinal);
        Assert.False(PoolInspector.InspectPool(map).LooksLikePool);
        Assert.True(map.GetReadOnlySpan(0, 1 << 20).IndexOfAnyExcept((byte)0) < 0, "a refused create writes nothing");
        Assert.Throws<PoolVolatileBackingException>(() => PmemVolume.OpenOrCreate(map, options, ownsMapping: false));

        using (PmemVolume volume = PmemVolume.Create(map, options with { AllowVolatile = true }, ownsMapping: false))
        {
            Assert.True(volume.Pool.CreatedOnVolatileMemory);
        }
        Assert.True(PoolInspector.InspectPool(map).CreatedOnVolatileMemory);
    }

    [Fact]
    public void AVolumeOfTheOldFormatIsRefusedNamingThePathWhatWasFoundAndHowToRecreateIt()
    {
        string path = _dir.File("old.dax");
        using (DaxDevice.CreateEmulated(path, 8L << 20, PageSize.Pte))
        {
        }
        (PmemFile file, DaxMapping map) = EmulatedVolume.MapRaw(path);
        using (file)
        using (map)
        {
            WriteOldFormatVolume(map);
            foreach (Func<PmemVolume> open in (Func<PmemVolume>[])[
                () => PmemVolume.Open(map, ownsMapping: false),
                () => PmemVolume.OpenOrCreate(map, ownsMapping: false),
                () => PmemVolume.Create(map, ownsMapping: false)])
            {
                PmemVolumeException e = Assert.Throws<PmemVolumeException>(open);
                Assert.Equal(PmemVolumeError.OldFormat, e.Error);
                Assert.Contains(path, e.Message, StringComparison.Ordinal);
                Assert.Contains("\"DPGRNT01\" version 1 at offset 0", e.Message, StringComparison.Ordinal);
                Assert.Contains("recreate the volume", e.Message, StringComparison.Ordinal);
            }
            // Nothing was written over it.
            Assert.Equal(0x31304E5247504450UL, map.GetReadOnlyRef<ulong>(0));
        }
    }

    /// <summary>
    /// The superblock the volume wrote before it lived in a pool (format 1): "DPGRNT01", version 1, slot size,
    /// chunk size, chunk count, slot count, slots, table and data offsets, then the CRC-32 of bytes 8-63 at 64.
    /// </summary>
    private static void WriteOldFormatVolume(DaxMapping map)
    {
        const long chunkSize = 64 * 1024;
        const long slotCount = 16;
        const long slotsOffset = 4096;
        const long tableOffset = slotsOffset + slotCount * 256;
        long chunkCount = (map.Length - tableOffset - 4096) / (chunkSize + 8);
        long dataOffset = (tableOffset + chunkCount * 8 + 4095) & ~4095L;
        while (dataOffset + chunkCount * chunkSize > map.Length)
        {
            chunkCount--;
            dataOffset = (tableOffset + chunkCount * 8 + 4095) & ~4095L;
        }
        map.Fill(0, dataOffset, 0);
        Span<byte> header = map.GetSpan(0, 4096);
        BinaryPrimitives.WriteUInt64LittleEndian(header, 0x31304E5247504450UL); // "DPGRNT01"
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], 1);
        BinaryPrimitives.WriteUInt32LittleEndian(header[12..], 256);
        BinaryPrimitives.WriteInt64LittleEndian(header[16..], chunkSize);
        BinaryPrimitives.WriteInt64LittleEndian(header[24..], chunkCount);
        BinaryPrimitives.WriteInt64LittleEndian(header[32..], slotCount);
        BinaryPrimitives.WriteInt64LittleEndian(header[40..], slotsOffset);
        BinaryPrimitives.WriteInt64LittleEndian(header[48..], tableOffset);
        BinaryPrimitives.WriteInt64LittleEndian(header[56..], dataOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(header[64..], Crc32.HashToUInt32(header[8..64]));
        map.Persist(0, 4096);
    }
}
