using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text.Json;
using DirectPmem.Garnet;
using DirectPmem.Storage;
using DirectPmem.Tool.Tests.Support;
using Xunit;

namespace DirectPmem.Tool.Tests;

/// <summary>
/// The Garnet volume's body, judged once (issues 21 and 22): <c>PmemVolume</c>'s open and <c>dpmem check</c> run the
/// same routine (DirectPmem.Storage's, through <see cref="PoolInspector.InspectVolume"/>), so for each damage the
/// library's exception and the tool's problem are asserted side by side on the same file: the same field, offset and
/// sentence; and what the open reclaims, the tool reports as reclaimed by the next open, and it is gone after one.
/// </summary>
public sealed class VolumeAgreementTests : IDisposable
{
    // The body's layout (not public API): 256-byte slots (commit word @0 = CRC-32 of [8, 256) << 32 | 1, sequence @8,
    // segment @16, name length @20, name @24), then one 8-byte owner word per chunk ((slot + 1) << 32 | index).
    private const int SlotSize = 256;
    private readonly string _dir = Directory.CreateTempSubdirectory("dpmem-volume-agree-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    public static TheoryData<string, string, string> Damage => new()
    {
        // The slot of base/Store/aof segment 0 (slot 2) torn; its fields out of range; its name not UTF-8; slot 1 copied into free slot 3.
        { "torn", "slot", "slot 2 at offset {slot2}: its commit word 0x" },
        { "fields", "slot", "slot 2 at offset {slot2} holds segment -4, name length 14, sequence 3" },
        { "name", "slot", "slot 2 at offset {slot2} holds a name that is not UTF-8" },
        { "duplicate", "slot", "slot 3 at offset {slot3} repeats segment 2 of 'base/Store/hlog', which slot 1 holds" },
        { "chunk-size", "geometry", "chunk size 5000 is not a power of two from 4096 to 67108864" },
    };

    [Theory]
    [MemberData(nameof(Damage))]
    public void EachDamageTheOpenRefusesTheToolReportsUnderTheSameFieldWithTheSameSentence(string damage, string field, string sentence)
    {
        VolumeCheckTests.VolumeImage image = VolumeCheckTests.CreatePoolWithVolume(Path.Combine(_dir, damage));
        using (var file = new FileStream(image.Path, FileMode.Open, FileAccess.ReadWrite))
        {
            switch (damage)
            {
                case "torn": Patch(file, image.SlotOffset(2) + 100, b => b[0] ^= 0x40); break;
                case "fields": RewriteSlot(file, image.SlotOffset(2), s => BinaryPrimitives.WriteInt32LittleEndian(s[16..], -4)); break;
                case "name": RewriteSlot(file, image.SlotOffset(2), s => s[25] = 0xC3); break;
                case "duplicate": Copy(file, image.SlotOffset(1), image.SlotOffset(3), SlotSize); break;
                case "chunk-size": RewriteParameters(file, image.Entry.Offset, p => BinaryPrimitives.WriteInt64LittleEndian(p[8..], 5000)); break;
            }
        }
        string expected = sentence.Replace("{slot2}", image.SlotOffset(2).ToString(), StringComparison.Ordinal)
            .Replace("{slot3}", image.SlotOffset(3).ToString(), StringComparison.Ordinal);

        PmemVolumeException e;
        using (PmemPool pool = PmemPool.OpenFile(image.Path, "DirectPmem.Garnet"))
        {
            e = Assert.Throws<PmemVolumeException>(() => PmemVolume.OpenInPool(pool, "garnet"));
        }
        Assert.Equal(PmemVolumeError.Corrupt, e.Error);

        (int code, string output, _) = Dpmem.Run("check", image.Path, "--json");
        Assert.Equal(2, code);
        // The first problem is the error the open throws; a torn or unusable slot leaves its chunk to be reclaimed after it.
        string problem = VolumeMessages(output)[0];
        string prefix = $"\"garnet\" {field}: ";
        Assert.StartsWith(prefix, problem, StringComparison.Ordinal);
        string said = problem[prefix.Length..];
        Assert.Contains(expected, said, StringComparison.Ordinal);
        // The library throws the tool's sentence capitalised, with a final stop.
        Assert.EndsWith(": " + char.ToUpperInvariant(said[0]) + said[1..] + ".", e.Message, StringComparison.Ordinal);
        Assert.Contains(image.Path, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AChunkOfADeadSlotIsReportedAsReclaimedByTheNextOpenWhichReclaimsIt()
    {
        VolumeCheckTests.VolumeImage image = VolumeCheckTests.CreatePoolWithVolume(Path.Combine(_dir, "orphan"));
        // What a crash between a segment's delete and its chunks' release leaves: a free chunk's word naming free slot 5.
        long orphan = image.ChunkCount - 1;
        using (var file = new FileStream(image.Path, FileMode.Open, FileAccess.ReadWrite))
        {
            Patch(file, image.WordOffset(orphan), w => BinaryPrimitives.WriteUInt64LittleEndian(w, (6UL << 32) | 0));
        }
        (int code, string output, _) = Dpmem.Run("check", image.Path, "--json");
        Assert.Equal(2, code);
        string problem = Assert.Single(VolumeMessages(output));
        Assert.Equal($"\"garnet\" chunk table: chunk {orphan}'s owner word at offset {image.WordOffset(orphan)} names slot 5, which holds no segment " +
            "(a crash between a segment's delete and its chunks' release): the chunk holds nothing acknowledged (the next writable open of the volume reclaims the chunk)", problem);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            JsonElement volume = Volume(doc);
            Assert.Equal(1, volume.GetProperty("reclaimable_chunks").GetInt64());
            Assert.Equal(image.ChunkCount - 4, volume.GetProperty("free_chunks").GetInt64());
        }

        // The open takes the same word for an orphan: it reclaims it (and gives it out again as free space).
        using (PmemPool pool = PmemPool.OpenFile(image.Path, "DirectPmem.Garnet"))
        using (PmemVolume volume = PmemVolume.OpenInPool(pool, "garnet"))
        {
            Assert.Equal((image.ChunkCount - 4) * VolumeCheckTests.ChunkSize, volume.FreeBytes);
            Assert.Equal(["base/Store/aof", "base/Store/hlog"], volume.GetDeviceNames());
        }
        (code, output, string error) = Dpmem.Run("check", image.Path, "--json");
        Assert.True(code == 0, output + error);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            Assert.Equal(0, Volume(doc).GetProperty("reclaimable_chunks").GetInt64());
            Assert.Equal(image.ChunkCount - 4, Volume(doc).GetProperty("free_chunks").GetInt64());
        }
    }

    [Fact]
    public void CheckRepairMakesTheRepairsTheOpenMakesAndNothingElse()
    {
        VolumeCheckTests.VolumeImage image = VolumeCheckTests.CreatePoolWithVolume(Path.Combine(_dir, "repair"));
        long orphan = image.ChunkCount - 1;
        using (var file = new FileStream(image.Path, FileMode.Open, FileAccess.ReadWrite))
        {
            Patch(file, image.WordOffset(orphan), w => BinaryPrimitives.WriteUInt64LittleEndian(w, 6UL << 32));
        }
        PoolCheckTests.Flip(image.Path, image.Entry.Offset + 4096 + 300);
        (int code, string output, _) = Dpmem.Run("check", image.Path, "--json");
        Assert.Equal(2, code);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            JsonElement[] problems = [.. doc.RootElement.GetProperty("problems").EnumerateArray()];
            Assert.Equal(2, problems.Length);
            Assert.All(problems, p => Assert.Contains("what a writable PmemVolume open does", p.GetProperty("repair").GetString(), StringComparison.Ordinal));
        }
        (code, output, string error) = Dpmem.Run("check", image.Path, "--repair", "--yes");
        Assert.True(code == 0, output + error);
        Assert.Contains("repaired volume \"garnet\": damaged structure header copy restored from the intact one", output, StringComparison.Ordinal);
        Assert.Contains("repaired volume \"garnet\": 1 chunk(s) whose owner word named no live segment freed", output, StringComparison.Ordinal);
        (code, output, error) = Dpmem.Run("check", image.Path, "--json");
        Assert.True(code == 0, output + error);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            Assert.Equal(image.ChunkCount - 4, Volume(doc).GetProperty("free_chunks").GetInt64());
            Assert.Equal(0, Volume(doc).GetProperty("reclaimable_chunks").GetInt64());
        }
        // What the open finds now needs no repair: the same free space, the same segments, the header chosen without a restore.
        using (PmemPool pool = PmemPool.OpenFile(image.Path, "DirectPmem.Garnet"))
        using (PmemVolume volume = PmemVolume.OpenInPool(pool, "garnet"))
        {
            Assert.Equal(PoolHeaderRepair.None, volume.Structure.HeaderRepair);
            Assert.Equal((image.ChunkCount - 4) * VolumeCheckTests.ChunkSize, volume.FreeBytes);
            Assert.Equal(["base/Store/aof", "base/Store/hlog"], volume.GetDeviceNames());
        }
    }

    [Fact]
    public void ACheckOfADamagedVolumeWritesNothingAndRepairLeavesABodyWithAnErrorAsTheOpenLeavesIt()
    {
        VolumeCheckTests.VolumeImage image = VolumeCheckTests.CreatePoolWithVolume(Path.Combine(_dir, "evidence"));
        using (var file = new FileStream(image.Path, FileMode.Open, FileAccess.ReadWrite))
        {
            Patch(file, image.WordOffset(image.ChunkCount - 1), w => BinaryPrimitives.WriteUInt64LittleEndian(w, 6UL << 32));
            Patch(file, image.SlotOffset(2) + 100, b => b[0] ^= 0x40);
        }
        byte[] before = File.ReadAllBytes(image.Path);
        Assert.Equal(2, Dpmem.Run("check", image.Path, "--json").Code);
        Assert.Equal(0, Dpmem.Run("info", image.Path, "--json").Code);
        Assert.Equal(2, Dpmem.Run("check", image.Path, "--repair", "--yes").Code);
        Assert.True(before.AsSpan().SequenceEqual(File.ReadAllBytes(image.Path)), "dpmem check/info changed the volume");
    }

    private static JsonElement Volume(JsonDocument doc) => doc.RootElement.GetProperty("pool").GetProperty("structures").EnumerateArray()
        .Single(s => s.GetProperty("name").GetString() == "garnet").GetProperty("volume");

    private static List<string> VolumeMessages(string json)
    {
        using JsonDocument doc = JsonDocument.Parse(json);
        return [.. doc.RootElement.GetProperty("problems").EnumerateArray()
            .Where(p => p.GetProperty("area").GetString() == "volume").Select(p => p.GetProperty("message").GetString()!)];
    }

    private static void Patch(FileStream file, long offset, Action<Span<byte>> change)
    {
        byte[] bytes = new byte[8];
        file.Position = offset;
        file.ReadExactly(bytes);
        change(bytes);
        file.Position = offset;
        file.Write(bytes);
    }

    private static void Copy(FileStream file, long from, long to, int length)
    {
        byte[] bytes = new byte[length];
        file.Position = from;
        file.ReadExactly(bytes);
        file.Position = to;
        file.Write(bytes);
    }

    // Changes a live slot's body and republishes a matching commit word: damage no crash can make, but a valid-looking slot.
    private static void RewriteSlot(FileStream file, long offset, Action<Span<byte>> change)
    {
        byte[] slot = new byte[SlotSize];
        file.Position = offset;
        file.ReadExactly(slot);
        change(slot);
        BinaryPrimitives.WriteUInt64LittleEndian(slot, ((ulong)Crc32.HashToUInt32(slot.AsSpan(8)) << 32) | 1);
        file.Position = offset;
        file.Write(slot);
    }

    // The geometry is the structure header's parameters (at 128 of both 4 KiB copies, sealed by the XxHash3-64 of [0, 4088) at 4088).
    private static void RewriteParameters(FileStream file, long structure, Action<Span<byte>> change)
    {
        foreach (long copy in new[] { structure, structure + 4096 })
        {
            byte[] block = new byte[4096];
            file.Position = copy;
            file.ReadExactly(block);
            change(block.AsSpan(128));
            BinaryPrimitives.WriteUInt64LittleEndian(block.AsSpan(4088), XxHash3.HashToUInt64(block.AsSpan(0, 4088)));
            file.Position = copy;
            file.Write(block);
        }
    }
}
