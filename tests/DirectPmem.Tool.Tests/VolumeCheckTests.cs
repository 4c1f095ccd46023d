using System.Globalization;
using System.Text.Json;
using DirectPmem.Garnet;
using DirectPmem.Garnet.Tests.Support;
using DirectPmem.Storage;
using DirectPmem.Tool.Tests.Support;
using Tsavorite.core;
using Xunit;

namespace DirectPmem.Tool.Tests;

/// <summary>
/// <c>dpmem check</c> and <c>dpmem info</c> on a pool holding a Garnet volume: its header state, and its body through
/// <see cref="PoolInspector.InspectVolume"/> (the devices and segments, the space each takes, the free space).
/// The volume is made by DirectPmem.Garnet, as a server makes it; dpmem itself does not reference Garnet.
/// </summary>
public sealed class VolumeCheckTests : IDisposable
{
    internal const long ChunkSize = 4096;
    internal const int SlotCount = 16;
    internal const long VolumeLength = 256 << 10;
    private readonly string _dir = Directory.CreateTempSubdirectory("dpmem-volume-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>What <see cref="CreatePoolWithVolume"/> made: where the volume is and where its body's tables are.</summary>
    internal sealed record VolumeImage(string Path, PoolDirectoryEntry Entry, long BodyOffset, long ChunkCount)
    {
        public long SlotOffset(int slot) => BodyOffset + slot * 256L;

        public long WordOffset(long chunk) => BodyOffset + SlotCount * 256L + chunk * 8;
    }

    /// <summary>
    /// A 1 MiB pool file with a log "wal" and a volume "garnet" (4 KiB chunks, 16 slots) holding three segments of
    /// two devices: base/Store/hlog segment 0 (slot 0, 8 KiB: chunks 0 and 1), base/Store/hlog segment 2 (slot 1, 512
    /// bytes at offset 8 KiB: one chunk at index 2) and base/Store/aof segment 0 (slot 2, one chunk).
    /// </summary>
    internal static VolumeImage CreatePoolWithVolume(string path)
    {
        using PmemPool pool = TestPools.CreateFile(path, 1 << 20, "DirectPmem.Garnet");
        pool.CreateLog("wal", 64 << 10).Dispose();
        using PmemVolume volume = PmemVolume.CreateInPool(pool, "garnet", VolumeLength, new PmemVolumeOptions { ChunkSize = ChunkSize, SlotCount = SlotCount });
        INamedDeviceFactory factory = volume.CreateDeviceFactoryCreator().Create("base");
        using (IDevice hlog = factory.Get(new FileDescriptor("Store", "hlog")))
        using (IDevice aof = factory.Get(new FileDescriptor("Store", "aof")))
        {
            hlog.Initialize(-1);
            aof.Initialize(-1);
            Assert.Equal(0u, DeviceIo.Write(hlog, 0, 0, DeviceIo.Pattern(8192, 1)).ErrorCode);
            Assert.Equal(0u, DeviceIo.Write(hlog, 2, 8192, DeviceIo.Pattern(512, 2)).ErrorCode);
            Assert.Equal(0u, DeviceIo.Write(aof, 0, 0, DeviceIo.Pattern(4096, 3)).ErrorCode);
        }
        return new VolumeImage(path, volume.Structure.Entry, volume.Structure.BodyOffset, volume.ChunkCount);
    }

    private string CreatePoolWithVolume(out PoolDirectoryEntry entry)
    {
        VolumeImage image = CreatePoolWithVolume(Path.Combine(_dir, "pool"));
        entry = image.Entry;
        return image.Path;
    }

    [Fact]
    public void AVolumeIsListedWithItsKindRangeAndHeaderState()
    {
        string path = CreatePoolWithVolume(out PoolDirectoryEntry entry);
        (int code, string output, string error) = Dpmem.Run("check", path, "--json");
        Assert.True(code == 0, output + error);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            Assert.True(doc.RootElement.GetProperty("clean").GetBoolean());
            JsonElement volume = doc.RootElement.GetProperty("pool").GetProperty("structures").EnumerateArray().Single(s => s.GetProperty("name").GetString() == "garnet");
            Assert.Equal("GarnetVolume", volume.GetProperty("kind").GetString());
            Assert.Equal(entry.Offset, volume.GetProperty("offset").GetInt64());
            Assert.Equal(VolumeLength, volume.GetProperty("length").GetInt64());
            Assert.Equal("primary header intact; backup header intact", volume.GetProperty("header").GetString());
        }
        (code, output, error) = Dpmem.Run("check", path);
        Assert.True(code == 0, output + error);
        Assert.Contains($"structure \"garnet\": GarnetVolume at {entry.Offset}, {VolumeLength} bytes; primary header intact; backup header intact", output, StringComparison.Ordinal);
        (code, output, error) = Dpmem.Run("info", path);
        Assert.True(code == 0, output + error);
        Assert.Contains("GarnetVolume", output, StringComparison.Ordinal);
    }

    [Fact]
    public void InfoJsonListsEverySegmentWithItsDeviceSlotChunksAndBytesAndTheFreeSpace()
    {
        VolumeImage image = CreatePoolWithVolume(Path.Combine(_dir, "pool"));
        (int code, string output, string error) = Dpmem.Run("info", image.Path, "--json");
        Assert.True(code == 0, output + error);
        using JsonDocument doc = JsonDocument.Parse(output);
        JsonElement volume = doc.RootElement.GetProperty("pool").GetProperty("structures").EnumerateArray()
            .Single(s => s.GetProperty("name").GetString() == "garnet").GetProperty("volume");
        Assert.Equal(ChunkSize, volume.GetProperty("chunk_size").GetInt64());
        Assert.Equal(image.ChunkCount, volume.GetProperty("chunk_count").GetInt64());
        Assert.Equal(image.ChunkCount * ChunkSize, volume.GetProperty("data_capacity").GetInt64());
        Assert.Equal(SlotCount, volume.GetProperty("slot_count").GetInt32());
        Assert.Equal(SlotCount - 3, volume.GetProperty("free_slots").GetInt32());
        Assert.Equal(4, volume.GetProperty("used_chunks").GetInt64());
        Assert.Equal(4 * ChunkSize, volume.GetProperty("used_bytes").GetInt64());
        Assert.Equal(image.ChunkCount - 4, volume.GetProperty("free_chunks").GetInt64());
        Assert.Equal((image.ChunkCount - 4) * ChunkSize, volume.GetProperty("free_bytes").GetInt64());
        Assert.Equal(0, volume.GetProperty("reclaimable_chunks").GetInt64());
        Assert.Equal(2, volume.GetProperty("devices").GetInt32());
        Assert.Equal(
            [("base/Store/aof", 0, 2, 1, ChunkSize, ChunkSize), ("base/Store/hlog", 0, 0, 2, 2 * ChunkSize, 2 * ChunkSize), ("base/Store/hlog", 2, 1, 1, ChunkSize, 3 * ChunkSize)],
            volume.GetProperty("segments").EnumerateArray().Select(s => (
                s.GetProperty("device").GetString()!, s.GetProperty("segment").GetInt32(), s.GetProperty("slot").GetInt32(), s.GetProperty("chunks").GetInt32(),
                s.GetProperty("bytes").GetInt64(), s.GetProperty("allocated_length").GetInt64())));
        // check --json carries the same body.
        (code, output, error) = Dpmem.Run("check", image.Path, "--json");
        Assert.True(code == 0, output + error);
        using JsonDocument checkDoc = JsonDocument.Parse(output);
        Assert.Equal(volume.GetRawText(), checkDoc.RootElement.GetProperty("pool").GetProperty("structures").EnumerateArray()
            .Single(s => s.GetProperty("name").GetString() == "garnet").GetProperty("volume").GetRawText());
    }

    [Fact]
    public void InfoAndCheckTextShowTheSegmentsAndTheSpaceLine()
    {
        VolumeImage image = CreatePoolWithVolume(Path.Combine(_dir, "pool"));
        string F(long value) => value.ToString(CultureInfo.InvariantCulture);
        (int code, string output, string error) = Dpmem.Run("check", image.Path);
        Assert.True(code == 0, output + error);
        Assert.Contains($"  volume \"garnet\": 3 segment(s) of 2 device(s) use 4 of {F(image.ChunkCount)} chunks of 4096 bytes (16384 bytes); " +
            $"{F(image.ChunkCount - 4)} free ({F((image.ChunkCount - 4) * ChunkSize)} bytes); {SlotCount - 3} of {SlotCount} slots free", output, StringComparison.Ordinal);
        (code, output, error) = Dpmem.Run("info", image.Path);
        Assert.True(code == 0, output + error);
        Assert.Contains("volume \"garnet\" segments", output, StringComparison.Ordinal);
        Assert.Contains("3 segment(s) of 2 device(s) use 4 of", output, StringComparison.Ordinal);
        string[] rows = output.Split('\n');
        Assert.Contains(rows, r => r.Contains("base/Store/hlog", StringComparison.Ordinal) && r.Contains(" 2 ", StringComparison.Ordinal) && r.Contains("12 KiB", StringComparison.Ordinal));
        Assert.Contains(rows, r => r.Contains("base/Store/aof", StringComparison.Ordinal) && r.Contains("4 KiB", StringComparison.Ordinal));
    }

    [Fact]
    public void ADamagedVolumeHeaderCopyIsAProblemOfTheVolumeAndBothCopiesDamagedSaySo()
    {
        string path = CreatePoolWithVolume(out PoolDirectoryEntry entry);
        PoolCheckTests.Flip(path, entry.Offset + 4096 + 300);
        (int code, string output, _) = Dpmem.Run("check", path, "--json");
        Assert.Equal(2, code);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            JsonElement problem = Assert.Single(doc.RootElement.GetProperty("problems").EnumerateArray());
            Assert.Equal("volume", problem.GetProperty("area").GetString());
            Assert.Contains("the backup copy of the structure header of GarnetVolume \"garnet\"", problem.GetProperty("message").GetString(), StringComparison.Ordinal);
            // The body is still read from the intact copy's geometry.
            Assert.Equal(3, doc.RootElement.GetProperty("pool").GetProperty("structures").EnumerateArray()
                .Single(s => s.GetProperty("name").GetString() == "garnet").GetProperty("volume").GetProperty("segments").GetArrayLength());
        }
        PoolCheckTests.Flip(path, entry.Offset + 300);
        (code, output, _) = Dpmem.Run("check", path, "--json");
        Assert.Equal(2, code);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            JsonElement problem = Assert.Single(doc.RootElement.GetProperty("problems").EnumerateArray());
            Assert.Contains("neither copy of the structure header", problem.GetProperty("message").GetString(), StringComparison.Ordinal);
            Assert.False(doc.RootElement.GetProperty("pool").GetProperty("structures").EnumerateArray()
                .Single(s => s.GetProperty("name").GetString() == "garnet").TryGetProperty("volume", out _));
        }
    }
}
