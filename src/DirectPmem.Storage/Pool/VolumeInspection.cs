using System.Globalization;
using DirectPmem.Mapping;

namespace DirectPmem.Storage;

/// <summary>The part of a Garnet volume's body a <see cref="VolumeProblem"/> is about.</summary>
public enum VolumeField
{
    /// <summary>The geometry kept in the structure header's parameters (layout version, slot size, chunk size and count, slot count, table offsets).</summary>
    Geometry,

    /// <summary>A slot of the slot table (one per device name and segment): its commit word, fields, name, or a (name, segment) pair held twice.</summary>
    Slot,

    /// <summary>An owner word of the chunk table: it names a slot that holds no segment, or an index no segment can have.</summary>
    ChunkTable,

    /// <summary>A slot or owner words on memory that cannot be read (poison, a page past the end of a truncated file, or a page the kernel could not provide).</summary>
    MediaError,
}

/// <summary>
/// One problem <see cref="PoolInspector.InspectVolume"/> found in a Garnet volume's body. <c>PmemVolume</c>'s open
/// (DirectPmem.Garnet) runs the same judge: it refuses an <see cref="PoolProblemSeverity.Error"/> with a
/// <c>PmemVolumeException</c> whose message ends with this sentence (capitalised, with a stop), and reclaims what is
/// <see cref="PoolProblemSeverity.Repairable"/>.
/// </summary>
public sealed class VolumeProblem
{
    internal VolumeProblem(VolumeField field, PoolProblemSeverity severity, long offset, string message)
    {
        Field = field;
        Severity = severity;
        Offset = offset;
        Message = message;
    }

    /// <summary>The part of the body the problem is about.</summary>
    public VolumeField Field { get; }

    /// <summary>
    /// How serious it is: <see cref="PoolProblemSeverity.Error"/> refuses the open, <see cref="PoolProblemSeverity.Repairable"/> is reclaimed by a
    /// writable open, <see cref="PoolProblemSeverity.Note"/> is a chunk of a damaged slot (neither used nor free; the slot's error decides).
    /// </summary>
    public PoolProblemSeverity Severity { get; }

    /// <summary>The mapping offset of the slot, owner word or parameter that failed.</summary>
    public long Offset { get; }

    /// <summary>What was expected and what was found, one sentence without a final stop.</summary>
    public string Message { get; }

    /// <summary>"Error Slot at 0x5000: ...".</summary>
    /// <returns>The severity, field, offset and message.</returns>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Severity} {Field} at 0x{Offset:x}: {Message}");
}

/// <summary>One (device name, segment) pair of a Garnet volume, as <see cref="PoolInspector.InspectVolume"/> read it.</summary>
public sealed class VolumeSegmentInspection
{
    internal VolumeSegmentInspection(string name, int segment, int slot, long sequence, int chunks, long chunkSize, long allocatedLength)
    {
        Name = name;
        Segment = segment;
        Slot = slot;
        Sequence = sequence;
        Chunks = chunks;
        UsedBytes = chunks * chunkSize;
        AllocatedLength = allocatedLength;
    }

    /// <summary>The device's name (Tsavorite's file name, without the segment number).</summary>
    public string Name { get; }

    /// <summary>The segment's index.</summary>
    public int Segment { get; }

    /// <summary>The slot that holds the pair.</summary>
    public int Slot { get; }

    /// <summary>The slot's sequence (the order in which segments were created).</summary>
    public long Sequence { get; }

    /// <summary>How many chunks the segment owns.</summary>
    public int Chunks { get; }

    /// <summary>The bytes those chunks take: <see cref="Chunks"/> × the chunk size.</summary>
    public long UsedBytes { get; }

    /// <summary>The end of the segment's last chunk (holes before it read as zeros and take no space).</summary>
    public long AllocatedLength { get; }
}

/// <summary>What <see cref="PoolInspector.InspectVolume"/> found in a Garnet volume: its header, geometry, segments, free space and problems.</summary>
public sealed class VolumeInspection
{
    internal VolumeInspection(PoolStructureInspection header, IReadOnlyList<VolumeProblem> problems, VolumeScan? scan)
    {
        Header = header;
        Problems = problems;
        if (scan is null)
        {
            Segments = [];
            return;
        }
        VolumeGeometry g = scan.Geometry;
        BodyValid = true;
        ChunkSize = g.ChunkSize;
        ChunkCount = g.ChunkCount;
        SlotCount = g.SlotCount;
        FreeSlots = scan.FreeSlots.Count;
        FreeChunks = scan.FreeChunks.Count + scan.OrphanedChunks.Count;
        ReclaimableChunks = scan.OrphanedChunks.Count;
        Segments = [.. scan.Segments
            .Select(s => new VolumeSegmentInspection(s.Name, s.Segment, s.Slot, s.Sequence, s.ChunkCount, g.ChunkSize, s.Length * g.ChunkSize))
            .OrderBy(s => s.Name, StringComparer.Ordinal).ThenBy(s => s.Segment)];
    }

    /// <summary>The structure header (the pool's judge, <see cref="PoolInspector.InspectStructure"/>): its copies, and the problems it has.</summary>
    public PoolStructureInspection Header { get; }

    /// <summary>The body's problems, in the order the volume's open meets them (header problems are in <see cref="Header"/>); empty for a sound body.</summary>
    public IReadOnlyList<VolumeProblem> Problems { get; }

    /// <summary>Whether <c>PmemVolume</c>'s open would accept the volume: the header opens and the body has no <see cref="PoolProblemSeverity.Error"/>.</summary>
    public bool Opens => Header.Opens && BodyValid && !Problems.Any(p => p.Severity == PoolProblemSeverity.Error);

    /// <summary>Whether the header and the geometry could be read (the values below are known only then; otherwise they are 0).</summary>
    public bool BodyValid { get; }

    /// <summary>The allocation unit in bytes.</summary>
    public long ChunkSize { get; }

    /// <summary>How many chunks the data area holds.</summary>
    public long ChunkCount { get; }

    /// <summary>The bytes the data area holds.</summary>
    public long DataCapacity => ChunkCount * ChunkSize;

    /// <summary>How many (device name, segment) pairs the volume can hold.</summary>
    public int SlotCount { get; }

    /// <summary>How many slots are free.</summary>
    public int FreeSlots { get; }

    /// <summary>How many chunks no segment owns: free ones, and those a writable open reclaims (<see cref="ReclaimableChunks"/>).</summary>
    public long FreeChunks { get; }

    /// <summary>The bytes of <see cref="FreeChunks"/>.</summary>
    public long FreeBytes => FreeChunks * ChunkSize;

    /// <summary>How many chunks carry an owner word naming no live owner (reported as <see cref="PoolProblemSeverity.Repairable"/>): a writable open publishes 0 to them.</summary>
    public long ReclaimableChunks { get; }

    /// <summary>The bytes the segments' chunks take.</summary>
    public long UsedBytes => Segments.Sum(s => s.UsedBytes);

    /// <summary>Every live segment, by device name (ordinal) and segment index.</summary>
    public IReadOnlyList<VolumeSegmentInspection> Segments { get; }
}

public static partial class PoolInspector
{
    /// <summary>
    /// Inspects a Garnet volume (<see cref="PoolStructureKind.GarnetVolume"/>) with the routines its open runs: the
    /// structure header (<see cref="InspectStructure"/>), then the body's geometry, every slot and every owner word
    /// of the chunk table, read poison-safe, collecting every problem. Writes nothing: chunks an open would reclaim
    /// are reported, not reclaimed.
    /// </summary>
    /// <param name="mapping">The mapping holding the pool (read-only is enough).</param>
    /// <param name="pool">The pool's inspection (<see cref="InspectPool"/>).</param>
    /// <param name="entry">A <see cref="PoolStructureKind.GarnetVolume"/> entry of <see cref="PoolInspection.Structures"/>.</param>
    /// <returns>What was found.</returns>
    /// <exception cref="ArgumentException">The entry is not a Garnet volume.</exception>
    public static VolumeInspection InspectVolume(DaxMapping mapping, PoolInspection pool, PoolDirectoryEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        if (entry.Kind != PoolStructureKind.GarnetVolume)
        {
            throw new ArgumentException($"{entry} is not a Garnet volume.", nameof(entry));
        }
        PoolStructureInspection header = InspectStructure(mapping, pool, entry);
        var sink = new CollectingVolumeSink();
        VolumeScan? scan = header.Opens ? VolumeFormat.Examine(mapping, entry, header.Parameters, sink) : null;
        return new VolumeInspection(header, sink.Problems, scan);
    }

    /// <summary>
    /// Makes the repairs a writable open of the volume (<c>PmemVolume.OpenInPool</c>) makes, and nothing else: a damaged or
    /// stale copy of the structure header is rewritten from the intact one, and, when the body has no error, the owner
    /// words <see cref="InspectVolume"/> reports as <see cref="PoolProblemSeverity.Repairable"/> (chunks naming no live
    /// owner) are published as 0, freeing those chunks. A body with an error is left as it is, as the open leaves it.
    /// </summary>
    /// <param name="mapping">A writable mapping holding the pool.</param>
    /// <param name="pool">The pool's inspection (<see cref="InspectPool"/>).</param>
    /// <param name="entry">A <see cref="PoolStructureKind.GarnetVolume"/> entry of <see cref="PoolInspection.Structures"/>.</param>
    /// <returns>The inspection after the repair.</returns>
    /// <exception cref="ArgumentException">The mapping is read-only, or the entry is not a Garnet volume.</exception>
    public static VolumeInspection RepairVolume(DaxMapping mapping, PoolInspection pool, PoolDirectoryEntry entry)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        ArgumentNullException.ThrowIfNull(pool);
        ArgumentNullException.ThrowIfNull(entry);
        if (mapping.IsReadOnly)
        {
            throw new ArgumentException("RepairVolume needs a writable mapping.", nameof(mapping));
        }
        if (entry.Kind != PoolStructureKind.GarnetVolume)
        {
            throw new ArgumentException($"{entry} is not a Garnet volume.", nameof(entry));
        }
        var headerSink = new CollectingPoolSink();
        byte[]? parameters = StructureHeader.Read(mapping, pool.Uuid, entry, [], headerSink, out _, out _, out byte[]? repairFrom, out bool primaryChosen);
        if (parameters is null || headerSink.Problems.Any(p => p.Severity == PoolProblemSeverity.Error))
        {
            return InspectVolume(mapping, pool, entry);
        }
        if (repairFrom is not null)
        {
            mapping.Write(repairFrom, primaryChosen ? entry.Offset + StructureHeader.BlockSize : entry.Offset);
        }
        var sink = new CollectingVolumeSink();
        VolumeScan? scan = VolumeFormat.Examine(mapping, entry, parameters, sink);
        if (scan is not null && !sink.Problems.Any(p => p.Severity == PoolProblemSeverity.Error))
        {
            foreach (int chunk in scan.OrphanedChunks)
            {
                mapping.Publish(scan.OwnerWordOffset(chunk), 0);
            }
        }
        return InspectVolume(mapping, pool, entry);
    }
}
