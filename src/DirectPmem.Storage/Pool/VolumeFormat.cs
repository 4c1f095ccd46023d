using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using System.Numerics;
using System.Text;
using DirectPmem.Mapping;

namespace DirectPmem.Storage;

/// <summary>
/// The geometry of a Garnet volume's body, kept as the parameters of its structure header (little-endian; offsets
/// relative to the body): 0 layout version (4), 4 slot size (4), 8 chunk size, 16 chunk count, 24 slot count,
/// 32 slots offset, 40 table offset; the data offset follows from them.
/// </summary>
internal readonly record struct VolumeGeometry(long ChunkSize, long ChunkCount, int SlotCount, long SlotsOffset, long TableOffset, long DataOffset)
{
    /// <summary>The body bytes the geometry needs: its tables and every chunk.</summary>
    public long Required => DataOffset + ChunkCount * ChunkSize;

    public void Write(Span<byte> p)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(p, VolumeFormat.LayoutVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(p[4..], VolumeFormat.SlotSize);
        BinaryPrimitives.WriteInt64LittleEndian(p[8..], ChunkSize);
        BinaryPrimitives.WriteInt64LittleEndian(p[16..], ChunkCount);
        BinaryPrimitives.WriteInt64LittleEndian(p[24..], SlotCount);
        BinaryPrimitives.WriteInt64LittleEndian(p[32..], SlotsOffset);
        BinaryPrimitives.WriteInt64LittleEndian(p[40..], TableOffset);
    }
}

/// <summary>Where the volume's judge reports a problem: the field, how serious, the mapping offset and one sentence without a final stop.</summary>
internal interface IVolumeProblemSink
{
    /// <summary>Reports one problem. A throwing sink throws for <see cref="PoolProblemSeverity.Error"/>.</summary>
    void Report(VolumeField field, PoolProblemSeverity severity, long offset, string message);
}

/// <summary><see cref="PoolInspector.InspectVolume"/>'s sink: every problem, in the order an open meets them.</summary>
internal sealed class CollectingVolumeSink : IVolumeProblemSink
{
    public List<VolumeProblem> Problems { get; } = [];

    public void Report(VolumeField field, PoolProblemSeverity severity, long offset, string message)
        => Problems.Add(new VolumeProblem(field, severity, offset, message));
}

/// <summary>One live slot as the judge read it: the (name, segment) pair and its chunk map.</summary>
internal sealed class ScannedSegment(string name, int segment, int slot, long sequence)
{
    public string Name { get; } = name;

    public int Segment { get; } = segment;

    public int Slot { get; } = slot;

    public long Sequence { get; } = sequence;

    private int[] _map = [];

    /// <summary>The chunk holding each index of the segment, or -1 for a hole; past <see cref="Length"/> all holes (the array grows by doubling).</summary>
    public ReadOnlySpan<int> Map => _map.AsSpan(0, Length);

    /// <summary>One past the highest index the segment has a chunk at (0 when it has none).</summary>
    public int Length { get; private set; }

    /// <summary>How many chunks the segment owns.</summary>
    public int ChunkCount { get; private set; }

    /// <summary>The chunk at <paramref name="index"/>, or -1.</summary>
    public int ChunkAt(int index) => index < Length ? _map[index] : -1;

    /// <summary>Gives the segment <paramref name="chunk"/> at <paramref name="index"/>, which has none yet.</summary>
    public void Add(int index, int chunk)
    {
        if (index >= _map.Length)
        {
            int[] grown = new int[Math.Max(Math.Max(4, _map.Length * 2), index + 1)];
            _map.CopyTo(grown, 0);
            grown.AsSpan(_map.Length).Fill(-1);
            _map = grown;
        }
        _map[index] = chunk;
        Length = Math.Max(Length, index + 1);
        ChunkCount++;
    }
}

/// <summary>What <see cref="VolumeFormat.Examine"/> read: the geometry, the live segments, the free chunks and slots, and the owner words an open reclaims.</summary>
internal sealed class VolumeScan(VolumeGeometry geometry, long bodyOffset)
{
    public VolumeGeometry Geometry { get; } = geometry;

    /// <summary>The body's offset in the mapping.</summary>
    public long BodyOffset { get; } = bodyOffset;

    /// <summary>The live segments by slot.</summary>
    public List<ScannedSegment> Segments { get; } = [];

    /// <summary>The free slots, ascending.</summary>
    public List<int> FreeSlots { get; } = [];

    /// <summary>The chunks whose owner word is 0, ascending.</summary>
    public List<int> FreeChunks { get; } = [];

    /// <summary>The chunks whose owner word names no live owner (what a writable open publishes 0 to), ascending.</summary>
    public List<int> OrphanedChunks { get; } = [];

    /// <summary>The highest sequence of a live slot (0 when none).</summary>
    public long MaxSequence { get; set; }

    public long SlotOffset(int slot) => BodyOffset + Geometry.SlotsOffset + (long)slot * VolumeFormat.SlotSize;

    public long OwnerWordOffset(long chunk) => BodyOffset + Geometry.TableOffset + chunk * sizeof(ulong);
}

/// <summary>
/// The on-media format of a Garnet volume's body (the structure of kind <see cref="PoolStructureKind.GarnetVolume"/>
/// after its pool-written header), in one place: the geometry in the header's parameters, the slot table, the chunk
/// table, and the one routine that judges them (<see cref="Examine"/>). <c>PmemVolume</c>'s open (DirectPmem.Garnet)
/// passes it a sink that throws; <see cref="PoolInspector.InspectVolume"/> (what <c>dpmem check</c>/<c>info</c> use)
/// one that collects.
/// </summary>
/// <remarks>
/// <para>Body layout (little-endian): a slot table of <see cref="SlotSize"/>-byte slots, one per (device name, segment)
/// pair: commit word u64 @0 (CRC-32 of bytes [8, 256) in the high half, valid bit 1; 0 when free), sequence i64 @8,
/// segment i32 @16, name length u16 @20, UTF-8 name @24; then a chunk table of one u64 owner word per chunk
/// ((slot + 1) &lt;&lt; 32 | index of the chunk within its segment; 0 when free), then the data chunks from the
/// next 4 KiB boundary.</para>
/// <para>A slot is written while its commit word is 0 and then published; a chunk's data is persisted before its owner
/// word; a delete publishes 0 to the slot, then to its chunks. So after a crash a slot is free or whole, and a chunk
/// word may name a slot that no longer holds a segment: that chunk holds nothing acknowledged and a writable open
/// reclaims it (<see cref="PoolProblemSeverity.Repairable"/>). A slot whose commit word does not match its body, a
/// slot's field out of range, a name that is not UTF-8 or a (name, segment) pair held twice cannot come from a crash:
/// they are errors, and an open refuses the volume; the chunks such a slot owns are noted
/// (<see cref="PoolProblemSeverity.Note"/>), neither used nor free.</para>
/// </remarks>
internal static class VolumeFormat
{
    public const int SlotSize = 256;
    public const int SlotSequenceOffset = 8;
    public const int SlotSegmentOffset = 16;
    public const int SlotNameLengthOffset = 20;
    public const int SlotNameOffset = 24;
    public const int MaxNameBytes = SlotSize - SlotNameOffset;
    public const uint LayoutVersion = 2;
    public const int ParametersLength = 48;
    public const long MinChunkSize = 4096;
    public const long MaxChunkSize = 64L << 20;
    public const int MaxSlots = 1 << 20;
    private const long Page = 4096;

    // The parameters start 128 bytes into the structure header.
    private const int ParametersInHeader = 128;

    // How many owner words one poison-safe read takes.
    private const int TableBlockWords = 512;

    // UTF-8 that refuses invalid bytes: slot names are judged and written with it (PmemVolume too).
    internal static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The commit word of a slot whose bytes [8, 256) are <paramref name="body"/>: CRC-32 in the high half, valid bit.</summary>
    public static ulong CommitWord(ReadOnlySpan<byte> body) => ((ulong)Crc32.HashToUInt32(body) << 32) | 1;

    /// <summary>The owner word of the chunk holding index <paramref name="index"/> of the segment in <paramref name="slot"/>.</summary>
    public static ulong OwnerWord(int slot, long index) => ((ulong)(uint)(slot + 1) << 32) | (uint)index;

    /// <summary>Fills a slot's bytes [8, 256) in <paramref name="slot"/> and returns the commit word to publish at its offset 0.</summary>
    public static ulong WriteSlot(Span<byte> slot, long sequence, int segment, ReadOnlySpan<byte> name)
    {
        Span<byte> body = slot[8..SlotSize];
        body.Clear();
        BinaryPrimitives.WriteInt64LittleEndian(slot[SlotSequenceOffset..], sequence);
        BinaryPrimitives.WriteInt32LittleEndian(slot[SlotSegmentOffset..], segment);
        BinaryPrimitives.WriteUInt16LittleEndian(slot[SlotNameLengthOffset..], (ushort)name.Length);
        name.CopyTo(slot[SlotNameOffset..]);
        return CommitWord(body);
    }

    /// <summary>
    /// Lays out a body of <paramref name="bodyLength"/> bytes: slots, chunk table, as many chunks as fit. Null when not
    /// even one chunk fits; <paramref name="needed"/> is then the least body that holds one.
    /// </summary>
    public static VolumeGeometry? Plan(long bodyLength, long chunkSize, int slotCount, out long needed)
    {
        long tableOffset = checked((long)slotCount * SlotSize);
        long available = bodyLength - tableOffset - Page; // room for the table's alignment slack
        long chunkCount = available > 0 ? available / (chunkSize + sizeof(ulong)) : 0;
        long dataOffset = AlignUp(tableOffset + chunkCount * sizeof(ulong), Page);
        while (chunkCount > 0 && dataOffset + chunkCount * chunkSize > bodyLength)
        {
            chunkCount--;
            dataOffset = AlignUp(tableOffset + chunkCount * sizeof(ulong), Page);
        }
        needed = dataOffset + chunkSize;
        if (chunkCount < 1 || chunkCount > int.MaxValue)
        {
            return null;
        }
        return new VolumeGeometry(chunkSize, chunkCount, slotCount, 0, tableOffset, dataOffset);
    }

    /// <summary>
    /// Judges the geometry in the structure header's <paramref name="parameters"/> against the body's length: layout
    /// version, slot size, chunk size, chunk and slot counts, and that the tables and chunks fit. Null (after an error)
    /// when it cannot be used.
    /// </summary>
    public static VolumeGeometry? ReadGeometry(ReadOnlySpan<byte> parameters, PoolDirectoryEntry entry, IVolumeProblemSink sink)
    {
        long at = entry.Offset + ParametersInHeader;
        long bodyLength = entry.Length - StructureHeader.Length;
        if (parameters.Length != ParametersLength)
        {
            sink.Report(VolumeField.Geometry, PoolProblemSeverity.Error, at, Invariant($"the volume's header holds {parameters.Length} parameter bytes, not {ParametersLength}"));
            return null;
        }
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(parameters);
        if (version != LayoutVersion)
        {
            sink.Report(VolumeField.Geometry, PoolProblemSeverity.Error, at, Invariant($"volume layout version {version} is not supported (this library reads version {LayoutVersion})"));
            return null;
        }
        uint slotSize = BinaryPrimitives.ReadUInt32LittleEndian(parameters[4..]);
        long chunkSize = BinaryPrimitives.ReadInt64LittleEndian(parameters[8..]);
        long chunkCount = BinaryPrimitives.ReadInt64LittleEndian(parameters[16..]);
        long slotCount = BinaryPrimitives.ReadInt64LittleEndian(parameters[24..]);
        long slotsOffset = BinaryPrimitives.ReadInt64LittleEndian(parameters[32..]);
        long tableOffset = BinaryPrimitives.ReadInt64LittleEndian(parameters[40..]);
        if (slotSize != SlotSize)
        {
            sink.Report(VolumeField.Geometry, PoolProblemSeverity.Error, at + 4, Invariant($"slot size {slotSize} is not {SlotSize}"));
            return null;
        }
        if (chunkSize is < MinChunkSize or > MaxChunkSize || !BitOperations.IsPow2(chunkSize))
        {
            sink.Report(VolumeField.Geometry, PoolProblemSeverity.Error, at + 8, Invariant($"chunk size {chunkSize} is not a power of two from {MinChunkSize} to {MaxChunkSize}"));
            return null;
        }
        if (chunkCount is < 1 or > int.MaxValue)
        {
            sink.Report(VolumeField.Geometry, PoolProblemSeverity.Error, at + 16, Invariant($"chunk count {chunkCount} is out of range"));
            return null;
        }
        if (slotCount is < 1 or > MaxSlots)
        {
            sink.Report(VolumeField.Geometry, PoolProblemSeverity.Error, at + 24, Invariant($"slot count {slotCount} is out of range"));
            return null;
        }
        long dataOffset = AlignUp(tableOffset + chunkCount * sizeof(ulong), Page);
        var geometry = new VolumeGeometry(chunkSize, chunkCount, (int)slotCount, slotsOffset, tableOffset, dataOffset);
        if (slotsOffset != 0 || tableOffset != slotCount * SlotSize || geometry.Required > bodyLength)
        {
            sink.Report(VolumeField.Geometry, PoolProblemSeverity.Error, at + 32, Invariant(
                $"the layout (slots at {slotsOffset}, table at {tableOffset}, data at {dataOffset}, {chunkCount} chunks of {chunkSize}) does not fit the volume's {bodyLength}-byte body"));
            return null;
        }
        return geometry;
    }

    /// <summary>
    /// The one judge of a volume's body, shared by <c>PmemVolume</c>'s open (a sink that throws the first error) and
    /// <see cref="PoolInspector.InspectVolume"/> (a sink that collects): the geometry, then every slot (commit word,
    /// fields, name, duplicates), then every owner word of the chunk table, all read poison-safe. Writes nothing: an
    /// open reclaims <see cref="VolumeScan.OrphanedChunks"/> itself. Null when the geometry cannot be used.
    /// </summary>
    public static VolumeScan? Examine(DaxMapping mapping, PoolDirectoryEntry entry, ReadOnlySpan<byte> parameters, IVolumeProblemSink sink)
    {
        if (ReadGeometry(parameters, entry, sink) is not VolumeGeometry geometry)
        {
            return null;
        }
        var scan = new VolumeScan(geometry, entry.Offset + StructureHeader.Length);
        var bySlot = new ScannedSegment?[geometry.SlotCount];
        // Slots reported as errors: their chunks are neither a live segment's nor orphans.
        var damaged = new bool[geometry.SlotCount];
        var pairs = new Dictionary<(string Name, int Segment), int>();
        Span<byte> raw = stackalloc byte[SlotSize];
        for (int slot = 0; slot < geometry.SlotCount; slot++)
        {
            long offset = scan.SlotOffset(slot);
            if (MediaRead.TryCopy(mapping, offset, raw) is PmemMediaErrorException lost)
            {
                sink.Report(VolumeField.MediaError, PoolProblemSeverity.Error, offset, Invariant(
                    $"slot {slot} at offset {offset} cannot be read: it met {What(lost)} at [0x{lost.BadOffset:x}, +0x{lost.BadLength:x})"));
                damaged[slot] = true;
                continue;
            }
            ulong commit = BinaryPrimitives.ReadUInt64LittleEndian(raw);
            if (commit == 0)
            {
                scan.FreeSlots.Add(slot);
                continue;
            }
            if (commit != CommitWord(raw[8..]))
            {
                sink.Report(VolumeField.Slot, PoolProblemSeverity.Error, offset, Invariant(
                    $"slot {slot} at offset {offset}: its commit word {FormatHeader.Hex(commit)} does not match the CRC-32 of its body ({FormatHeader.Hex(CommitWord(raw[8..]))}): damaged (a slot is published only once its body is durable)"));
                damaged[slot] = true;
                continue;
            }
            long sequence = BinaryPrimitives.ReadInt64LittleEndian(raw[SlotSequenceOffset..]);
            int segment = BinaryPrimitives.ReadInt32LittleEndian(raw[SlotSegmentOffset..]);
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(raw[SlotNameLengthOffset..]);
            if (segment < 0 || nameLength is 0 or > MaxNameBytes || sequence < 1)
            {
                sink.Report(VolumeField.Slot, PoolProblemSeverity.Error, offset, Invariant(
                    $"slot {slot} at offset {offset} holds segment {segment}, name length {nameLength}, sequence {sequence} (a segment from 0, a name of 1 to {MaxNameBytes} bytes, a sequence from 1)"));
                damaged[slot] = true;
                continue;
            }
            string name;
            try
            {
                name = StrictUtf8.GetString(raw.Slice(SlotNameOffset, nameLength));
            }
            catch (DecoderFallbackException)
            {
                sink.Report(VolumeField.Slot, PoolProblemSeverity.Error, offset, Invariant($"slot {slot} at offset {offset} holds a name that is not UTF-8"));
                damaged[slot] = true;
                continue;
            }
            if (!pairs.TryAdd((name, segment), slot))
            {
                sink.Report(VolumeField.Slot, PoolProblemSeverity.Error, offset, Invariant(
                    $"slot {slot} at offset {offset} repeats segment {segment} of '{name}', which slot {pairs[(name, segment)]} holds"));
                damaged[slot] = true;
                continue;
            }
            var live = new ScannedSegment(name, segment, slot, sequence);
            bySlot[slot] = live;
            scan.Segments.Add(live);
            scan.MaxSequence = Math.Max(scan.MaxSequence, sequence);
        }

        Span<byte> block = stackalloc byte[TableBlockWords * sizeof(ulong)];
        for (long first = 0; first < geometry.ChunkCount; first += TableBlockWords)
        {
            int words = (int)Math.Min(TableBlockWords, geometry.ChunkCount - first);
            Span<byte> read = block[..(words * sizeof(ulong))];
            if (MediaRead.TryCopy(mapping, scan.OwnerWordOffset(first), read) is PmemMediaErrorException lost)
            {
                sink.Report(VolumeField.MediaError, PoolProblemSeverity.Error, scan.OwnerWordOffset(first), Invariant(
                    $"the owner words of chunks {first} to {first + words - 1} at offset {scan.OwnerWordOffset(first)} cannot be read: they met {What(lost)} at [0x{lost.BadOffset:x}, +0x{lost.BadLength:x})"));
                continue;
            }
            for (int i = 0; i < words; i++)
            {
                long chunk = first + i;
                ulong owner = BinaryPrimitives.ReadUInt64LittleEndian(read[(i * sizeof(ulong))..]);
                if (owner == 0)
                {
                    scan.FreeChunks.Add((int)chunk);
                    continue;
                }
                long ownerSlot = (long)(owner >> 32) - 1;
                if (ownerSlot >= 0 && ownerSlot < geometry.SlotCount && damaged[ownerSlot])
                {
                    sink.Report(VolumeField.ChunkTable, PoolProblemSeverity.Note, scan.OwnerWordOffset(chunk), Invariant(
                        $"chunk {chunk}'s owner word at offset {scan.OwnerWordOffset(chunk)} names slot {ownerSlot}, which is damaged: the chunk is neither counted used nor free"));
                    continue;
                }
                string? orphan = Orphan(owner, chunk, geometry, bySlot, scan.OwnerWordOffset(chunk));
                if (orphan is not null)
                {
                    scan.OrphanedChunks.Add((int)chunk);
                    sink.Report(VolumeField.ChunkTable, PoolProblemSeverity.Repairable, scan.OwnerWordOffset(chunk), orphan);
                    continue;
                }
                bySlot[ownerSlot]!.Add((int)(uint)owner, (int)chunk);
            }
        }
        return scan;
    }

    // Why an owner word names no live owner, or null when it does. A crash between a segment's delete and its chunks'
    // release leaves words naming a free slot; the others cannot come from a crash but hold nothing a segment can reach.
    private static string? Orphan(ulong owner, long chunk, VolumeGeometry geometry, ScannedSegment?[] bySlot, long offset)
    {
        long slot = (long)(owner >> 32) - 1;
        uint index = (uint)owner;
        if (slot >= geometry.SlotCount || slot < 0)
        {
            return Invariant($"chunk {chunk}'s owner word at offset {offset} names slot {slot}, outside the volume's {geometry.SlotCount} slots: the chunk holds nothing a segment reaches");
        }
        if (bySlot[slot] is not ScannedSegment segment)
        {
            return Invariant($"chunk {chunk}'s owner word at offset {offset} names slot {slot}, which holds no segment (a crash between a segment's delete and its chunks' release): the chunk holds nothing acknowledged");
        }
        if (index >= geometry.ChunkCount)
        {
            return Invariant($"chunk {chunk}'s owner word at offset {offset} gives index {index} of segment {segment.Segment} of '{segment.Name}', beyond the volume's {geometry.ChunkCount} chunks: the chunk holds nothing a segment reaches");
        }
        if (segment.ChunkAt((int)index) is int earlier and >= 0)
        {
            return Invariant($"chunk {chunk}'s owner word at offset {offset} gives index {index} of segment {segment.Segment} of '{segment.Name}', which chunk {earlier} already holds: the segment keeps that one");
        }
        return null;
    }

    private static string What(PmemMediaErrorException e) => e.Cause;

    private static long AlignUp(long value, long alignment) => (value + alignment - 1) & ~(alignment - 1);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
