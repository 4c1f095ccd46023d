using System.Buffers.Binary;
using System.Text;
using DirectPmem.Mapping;
using Xunit;

namespace DirectPmem.Storage.Tests;

/// <summary>
/// The Garnet volume's body format and its one judge (<see cref="VolumeFormat.Examine"/>, reached through the public
/// <see cref="PoolInspector.InspectVolume"/>): a clean volume with several devices and segments, then one image per
/// problem class, each found with its field, severity, offset and sentence, and nothing written by the inspection.
/// </summary>
public sealed class VolumeFormatTests : IDisposable
{
    private const string Layout = "volume-format";
    private const long ChunkSize = 4096;
    private const int Slots = 8;
    private const long PoolSize = 2 << 20;
    private readonly List<string> _dirs = [];

    public void Dispose()
    {
        foreach (string dir in _dirs)
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>A pool in anonymous memory holding a log and a volume "garnet" with three segments of two devices, written with the format's own writers.</summary>
    private sealed class Image : IDisposable
    {
        public Image()
            : this(DaxMapping.CreateAnonymous(PoolSize))
        {
        }

        /// <summary>Writes the image into <paramref name="mapping"/> (<see cref="PoolSize"/> bytes); the image owns it.</summary>
        public Image(DaxMapping mapping)
        {
            Mapping = mapping;
            using PmemPool pool = TestPools.Create(Mapping, Layout);
            pool.CreateLog("wal", 64 << 10).Dispose();
            const long length = 256 << 10;
            Geometry = VolumeFormat.Plan(length - 8192, ChunkSize, Slots, out _)!.Value;
            byte[] parameters = new byte[VolumeFormat.ParametersLength];
            Geometry.Write(parameters);
            Entry = pool.CreateStructure("garnet", PoolStructureKind.GarnetVolume, length, parameters, s => s.Pool.Mapping.Fill(s.BodyOffset, Geometry.DataOffset, 0)).Entry;
            Body = Entry.Offset + 8192;
            // hlog.log segment 0: chunks 0 and 1 (indexes 0, 1); hlog.log segment 3: chunk 5 at index 2 (a hole before it);
            // checkpoints/meta segment 0: chunk 2; aof.log segment 0 in slot 3, created and not yet written (no chunk).
            WriteSlot(0, 1, "hlog.log", 0);
            WriteSlot(1, 2, "hlog.log", 3);
            WriteSlot(2, 3, "checkpoints/meta", 0);
            WriteSlot(3, 4, "aof.log", 0);
            Own(0, 0, 0);
            Own(1, 0, 1);
            Own(5, 1, 2);
            Own(2, 2, 0);
        }

        public DaxMapping Mapping { get; }

        public VolumeGeometry Geometry { get; }

        public PoolDirectoryEntry Entry { get; }

        public long Body { get; }

        public long SlotOffset(int slot) => Body + (long)slot * VolumeFormat.SlotSize;

        public long WordOffset(long chunk) => Body + Geometry.TableOffset + chunk * 8;

        public void WriteSlot(int slot, long sequence, string name, int segment)
        {
            Span<byte> raw = Mapping.GetSpan(SlotOffset(slot), VolumeFormat.SlotSize);
            BinaryPrimitives.WriteUInt64LittleEndian(raw, VolumeFormat.WriteSlot(raw, sequence, segment, Encoding.UTF8.GetBytes(name)));
        }

        public void Own(long chunk, int slot, long index) => Mapping.Publish(WordOffset(chunk), VolumeFormat.OwnerWord(slot, index));

        public VolumeInspection Inspect()
        {
            PoolInspection pool = PoolInspector.InspectPool(Mapping, Layout);
            return PoolInspector.InspectVolume(Mapping, pool, pool.Structures.Single(s => s.Name == "garnet"));
        }

        public void Dispose() => Mapping.Dispose();
    }

    [Fact]
    public void ACleanVolumeListsItsSegmentsAndFreeSpaceWithoutAProblem()
    {
        using var image = new Image();
        VolumeInspection volume = image.Inspect();
        Assert.Empty(volume.Problems);
        Assert.True(volume.Opens);
        Assert.Equal((ChunkSize, image.Geometry.ChunkCount, Slots), (volume.ChunkSize, volume.ChunkCount, volume.SlotCount));
        Assert.Equal(Slots - 4, volume.FreeSlots);
        Assert.Equal(image.Geometry.ChunkCount - 4, volume.FreeChunks);
        Assert.Equal(volume.FreeChunks * ChunkSize, volume.FreeBytes);
        Assert.Equal(4 * ChunkSize, volume.UsedBytes);
        Assert.Equal(0, volume.ReclaimableChunks);
        Assert.Equal(
            [("aof.log", 0, 3, 0, 0L, 0L), ("checkpoints/meta", 0, 2, 1, ChunkSize, ChunkSize), ("hlog.log", 0, 0, 2, 2 * ChunkSize, 2 * ChunkSize), ("hlog.log", 3, 1, 1, ChunkSize, 3 * ChunkSize)],
            volume.Segments.Select(s => (s.Name, s.Segment, s.Slot, s.Chunks, s.UsedBytes, s.AllocatedLength)));
    }

    public static TheoryData<string, VolumeField, PoolProblemSeverity, string> Damage => new()
    {
        { "torn-slot", VolumeField.Slot, PoolProblemSeverity.Error, "slot 3 at offset {slot3}: its commit word 0x" },
        { "slot-fields", VolumeField.Slot, PoolProblemSeverity.Error, "slot 3 at offset {slot3} holds segment -4, name length 7, sequence 4" },
        { "slot-name", VolumeField.Slot, PoolProblemSeverity.Error, "slot 3 at offset {slot3} holds a name that is not UTF-8" },
        { "duplicate", VolumeField.Slot, PoolProblemSeverity.Error, "slot 4 at offset {slot4} repeats segment 3 of 'hlog.log', which slot 1 holds" },
        { "dead-slot", VolumeField.ChunkTable, PoolProblemSeverity.Repairable, "chunk 7's owner word at offset {word7} names slot 5, which holds no segment" },
        { "slot-range", VolumeField.ChunkTable, PoolProblemSeverity.Repairable, "chunk 7's owner word at offset {word7} names slot 900, outside the volume's 8 slots" },
        { "index-range", VolumeField.ChunkTable, PoolProblemSeverity.Repairable, "chunk 7's owner word at offset {word7} gives index 100000 of segment 0 of 'hlog.log', beyond the volume's" },
        { "index-twice", VolumeField.ChunkTable, PoolProblemSeverity.Repairable, "chunk 7's owner word at offset {word7} gives index 1 of segment 0 of 'hlog.log', which chunk 1 already holds" },
        { "version", VolumeField.Geometry, PoolProblemSeverity.Error, "volume layout version 3 is not supported" },
        { "chunk-size", VolumeField.Geometry, PoolProblemSeverity.Error, "chunk size 5000 is not a power of two" },
        { "does-not-fit", VolumeField.Geometry, PoolProblemSeverity.Error, "does not fit the volume's" },
    };

    [Theory]
    [MemberData(nameof(Damage))]
    public void EachProblemClassIsFoundWithItsFieldSeverityOffsetAndSentence(string damage, VolumeField field, PoolProblemSeverity severity, string sentence)
    {
        using var image = new Image();
        long offset = Apply(image, damage);
        byte[] before = image.Mapping.GetReadOnlySpan(0, (int)image.Mapping.Length).ToArray();
        VolumeInspection volume = image.Inspect();
        VolumeProblem problem = Assert.Single(volume.Problems);
        Assert.Equal((field, severity, offset), (problem.Field, problem.Severity, problem.Offset));
        string expected = sentence.Replace("{slot3}", image.SlotOffset(3).ToString(), StringComparison.Ordinal)
            .Replace("{slot4}", image.SlotOffset(4).ToString(), StringComparison.Ordinal)
            .Replace("{word7}", image.WordOffset(7).ToString(), StringComparison.Ordinal);
        Assert.Contains(expected, problem.Message, StringComparison.Ordinal);
        Assert.Equal(severity != PoolProblemSeverity.Error, volume.Opens);
        if (severity == PoolProblemSeverity.Repairable)
        {
            // The orphan counts as free (the next writable open reclaims it) and is counted apart.
            Assert.Equal(1, volume.ReclaimableChunks);
            Assert.Equal(image.Geometry.ChunkCount - 4, volume.FreeChunks);
            Assert.Equal(4 * ChunkSize, volume.UsedBytes);
        }
        // The inspection wrote nothing: the evidence stays.
        Assert.True(before.AsSpan().SequenceEqual(image.Mapping.GetReadOnlySpan(0, (int)image.Mapping.Length)));
    }

    [Fact]
    public void ADamagedStructureHeaderLeavesTheBodyUnjudged()
    {
        using var image = new Image();
        image.Mapping.GetSpan(image.Entry.Offset + 300, 1)[0] ^= 1;
        image.Mapping.GetSpan(image.Entry.Offset + 4096 + 300, 1)[0] ^= 1;
        VolumeInspection volume = image.Inspect();
        Assert.False(volume.Opens);
        Assert.False(volume.BodyValid);
        Assert.Contains(volume.Header.Problems, p => p.Severity == PoolProblemSeverity.Error && p.Message.StartsWith("neither copy of the structure header", StringComparison.Ordinal));
        Assert.Empty(volume.Problems);
        Assert.Empty(volume.Segments);
    }

    [Fact]
    public void EveryProblemIsCollectedNotOnlyTheFirst()
    {
        using var image = new Image();
        // Slot 1 (hlog.log segment 3, owning chunk 5) torn, and chunk 7 naming free slot 5.
        image.Mapping.GetSpan(image.SlotOffset(1) + 40, 1)[0] ^= 0x20;
        Apply(image, "dead-slot");
        VolumeInspection volume = image.Inspect();
        // Slots first, then the table in chunk order. The torn slot's chunk 5 is a note (neither used nor free: its fate
        // follows the slot's), not an orphan to reclaim; chunk 7 is one.
        Assert.Equal([(VolumeField.Slot, PoolProblemSeverity.Error, image.SlotOffset(1)), (VolumeField.ChunkTable, PoolProblemSeverity.Note, image.WordOffset(5)),
            (VolumeField.ChunkTable, PoolProblemSeverity.Repairable, image.WordOffset(7))],
            volume.Problems.Select(p => (p.Field, p.Severity, p.Offset)));
        Assert.Contains("names slot 1, which is damaged", volume.Problems[1].Message, StringComparison.Ordinal);
        Assert.Equal(1, volume.ReclaimableChunks);
        Assert.Equal(image.Geometry.ChunkCount - 4, volume.FreeChunks);
        Assert.Equal(3 * ChunkSize, volume.UsedBytes);
        Assert.False(volume.Opens);
    }

    [Fact]
    public void RepairVolumeFreesOrphanedChunksOnlyWhenTheBodyHasNoError()
    {
        using var image = new Image();
        Apply(image, "dead-slot");
        Apply(image, "torn-slot");
        PoolInspection pool = PoolInspector.InspectPool(image.Mapping, Layout);
        PoolDirectoryEntry entry = pool.Structures.Single(s => s.Name == "garnet");
        byte[] before = image.Mapping.GetReadOnlySpan(0, (int)image.Mapping.Length).ToArray();
        // A body the open refuses is left as the open leaves it.
        Assert.Equal(1, PoolInspector.RepairVolume(image.Mapping, pool, entry).ReclaimableChunks);
        Assert.True(before.AsSpan().SequenceEqual(image.Mapping.GetReadOnlySpan(0, (int)image.Mapping.Length)));
        // Without the error, the orphan's word is published 0, as the open publishes it.
        Apply(image, "torn-slot");
        VolumeInspection repaired = PoolInspector.RepairVolume(image.Mapping, pool, entry);
        Assert.Empty(repaired.Problems);
        Assert.Equal(0UL, image.Mapping.GetReadOnlyRef<ulong>(image.WordOffset(7)));
        Assert.Equal(image.Geometry.ChunkCount - 4, repaired.FreeChunks);
    }

    [Fact]
    public void TablesOnMemoryThatCannotBeReadAreMediaErrorsNotACrash()
    {
        string dir = TruncationDirectory.Create("directpmem-volume-");
        _dirs.Add(dir);
        string path = Path.Combine(dir, "pool");
        using (var stream = new FileStream(path, FileMode.CreateNew))
        {
            stream.SetLength(PoolSize);
        }
        using PmemFile file = PmemFile.Open(path, writable: true);
        using var image = new Image(file.Map());
        // The file ends where the volume's body starts: the slot table and the chunk table are past its end.
        Truncation.Truncate(path, image.Body);
        VolumeInspection volume = image.Inspect();
        Assert.False(volume.Opens);
        Assert.True(volume.Header.Opens); // the structure header, before the cut, still reads
        Assert.All(volume.Problems, p => Assert.Equal((VolumeField.MediaError, PoolProblemSeverity.Error), (p.Field, p.Severity)));
        Assert.Equal(image.SlotOffset(0), volume.Problems[0].Offset);
        Assert.StartsWith($"slot 0 at offset {image.SlotOffset(0)} cannot be read: it met a page past the end of the file", volume.Problems[0].Message, StringComparison.Ordinal);
        Assert.Equal(Slots + 1, volume.Problems.Count); // every slot, then the one block of owner words
        Assert.Equal(image.WordOffset(0), volume.Problems[^1].Offset);
        Assert.Empty(volume.Segments);
    }

    [Fact]
    public void InspectVolumeRefusesAnEntryOfAnotherKind()
    {
        using var image = new Image();
        PoolInspection pool = PoolInspector.InspectPool(image.Mapping, Layout);
        ArgumentException e = Assert.Throws<ArgumentException>(() => PoolInspector.InspectVolume(image.Mapping, pool, pool.Structures.Single(s => s.Name == "wal")));
        Assert.Equal("entry", e.ParamName);
    }

    /// <summary>Damages the image; returns the offset the problem must name.</summary>
    private static long Apply(Image image, string damage)
    {
        switch (damage)
        {
            case "torn-slot":
                image.Mapping.GetSpan(image.SlotOffset(3) + 40, 1)[0] ^= 0x20;
                return image.SlotOffset(3);
            case "slot-fields":
                image.WriteSlot(3, 4, "aof.log", -4);
                return image.SlotOffset(3);
            case "slot-name":
            {
                Span<byte> raw = image.Mapping.GetSpan(image.SlotOffset(3), VolumeFormat.SlotSize);
                BinaryPrimitives.WriteUInt64LittleEndian(raw, VolumeFormat.WriteSlot(raw, 4, 0, [0x68, 0xC3, 0x28]));
                return image.SlotOffset(3);
            }
            case "duplicate":
                image.WriteSlot(4, 5, "hlog.log", 3);
                return image.SlotOffset(4);
            case "dead-slot":
                image.Own(7, 5, 0);
                return image.WordOffset(7);
            case "slot-range":
                image.Own(7, 900, 0);
                return image.WordOffset(7);
            case "index-range":
                image.Own(7, 0, 100_000);
                return image.WordOffset(7);
            case "index-twice":
                image.Own(7, 0, 1);
                return image.WordOffset(7);
            default:
                return RewriteGeometry(image, damage);
        }
    }

    // The geometry lives in the structure header's parameters (at 128 in both copies, checksummed): rewrite both copies and reseal.
    private static long RewriteGeometry(Image image, string damage)
    {
        VolumeGeometry g = image.Geometry;
        VolumeGeometry bad = damage switch
        {
            "version" => g,
            "chunk-size" => g with { ChunkSize = 5000 },
            _ => g with { ChunkCount = g.ChunkCount * 4 },
        };
        byte[] parameters = new byte[VolumeFormat.ParametersLength];
        bad.Write(parameters);
        if (damage == "version")
        {
            BinaryPrimitives.WriteUInt32LittleEndian(parameters, 3);
        }
        foreach (long copy in new[] { image.Entry.Offset, image.Entry.Offset + 4096 })
        {
            Span<byte> block = image.Mapping.GetSpan(copy, 4096);
            parameters.CopyTo(block[128..]);
            FormatHeader.Seal(block);
        }
        long at = image.Entry.Offset + 128;
        return damage switch { "version" => at, "chunk-size" => at + 8, _ => at + 32 };
    }
}
