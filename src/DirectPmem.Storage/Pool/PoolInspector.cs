using System.Buffers.Binary;
using System.Globalization;
using DirectPmem.Mapping;
using DirectPmem.Storage.Transactions;

namespace DirectPmem.Storage;

/// <summary>
/// Read-only inspection of what DirectPmem.Storage keeps in a mapping, for tools such as
/// <c>dpmem check</c> and <c>dpmem info</c>: it writes nothing, validates every length and offset it
/// reads before using it, and reports the problems it finds instead of throwing at the first.
/// </summary>
public static class PoolInspector
{
    /// <summary>
    /// Inspects the transactional heap whose region starts at <paramref name="offset"/>: its header
    /// (validated as <see cref="TransactionalHeap.Open"/> validates it), every lane's generation word
    /// and the undo entries that recovery would roll back, and the allocation map.
    /// </summary>
    /// <param name="mapping">The mapping holding the heap (read-only is enough).</param>
    /// <param name="offset">The mapping offset of the heap's region.</param>
    /// <param name="length">The region's length, or <see langword="null"/> to take the one the header records (after checking it fits).</param>
    /// <returns>What was found; <see cref="HeapInspection.Problems"/> is empty for a sound heap.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="mapping"/> is null.</exception>
    public static HeapInspection InspectHeap(DaxMapping mapping, long offset, long? length = null)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        var problems = new List<string>();
        if (offset < 0 || offset % 64 != 0 || offset > mapping.Length - HeapLayout.HeaderBlock)
        {
            problems.Add(Invariant($"a heap cannot start at {offset}: its region must start at a multiple of 64 with at least {HeapLayout.HeaderBlock} bytes before the end of the mapping ({mapping.Length} bytes)"));
            return new HeapInspection(false, problems, default, [], 0);
        }
        long region = length ?? BinaryPrimitives.ReadInt64LittleEndian(mapping.GetReadOnlySpan(offset + 16, 8));
        if (region < HeapLayout.HeaderBlock || region % 64 != 0 || region > mapping.Length - offset)
        {
            problems.Add(Invariant($"the heap's region length {region} at offset {offset} is not a multiple of 64 from {HeapLayout.HeaderBlock} bytes up that fits in the mapping ({mapping.Length - offset} bytes left)"));
            return new HeapInspection(false, problems, default, [], 0);
        }
        HeapLayout layout;
        try
        {
            layout = HeapLayout.ReadHeader(mapping.GetReadOnlySpan(offset, HeapLayout.HeaderLength), region, offset);
        }
        catch (TransactionalHeapFormatException e)
        {
            problems.Add(Invariant($"header field {e.Field} (offset {e.Offset}): {e.Message}"));
            return new HeapInspection(false, problems, default, [], 0);
        }

        var lanes = new HeapLaneInspection[layout.LaneCount];
        for (int lane = 0; lane < layout.LaneCount; lane++)
        {
            long word = offset + layout.LanesOffset + lane * layout.LaneStride;
            ulong raw = mapping.GetReadOnlyRef<ulong>(word);
            if (!LaneWord.TryDecode(raw, out ulong generation) || generation == LaneWord.MaxGeneration)
            {
                problems.Add(Invariant($"lane {lane}: the generation word at offset {word} (0x{raw:x16}) does not verify: it is damaged, and recovery refuses the heap"));
                lanes[lane] = new HeapLaneInspection(lane, null, 0, 0);
                continue;
            }
            (int entries, long bytes) = ScanLane(mapping, offset, layout, lane, generation + 1, problems);
            lanes[lane] = new HeapLaneInspection(lane, generation, entries, bytes);
        }

        ReadOnlySpan<byte> map = mapping.GetReadOnlySpan(offset + layout.MapOffset, layout.ObjectCount);
        int allocated = map.Count((byte)1);
        int bad = map.Length - allocated - map.Count((byte)0);
        if (bad > 0)
        {
            int first = map.IndexOfAnyExcept((byte)0, (byte)1);
            problems.Add(Invariant($"the allocation map has {bad} byte(s) that are neither 0 (free) nor 1 (allocated), the first for object {first} (offset {offset + layout.MapOffset + first}): recovery refuses the heap"));
        }
        return new HeapInspection(true, problems, layout, lanes, allocated);
    }

    // Recovery's own lane scan (reads only): the entries of the next generation that recovery would roll back.
    private static (int Entries, long Bytes) ScanLane(DaxMapping mapping, long offset, HeapLayout layout, int lane, ulong generation, List<string> problems)
    {
        var entries = new List<(int Lane, long Entry, long Target, int Length)>();
        if (!TransactionalHeap.ScanLane(mapping, offset, layout, lane, generation, entries, out var outside))
        {
            problems.Add(Invariant($"lane {lane}: the undo entry at offset {outside.Entry} verifies but names [0x{outside.Target:x}, +{outside.Length}) relative to the heap, outside its transactional area [0x{layout.RootOffset:x}, 0x{layout.ObjectsEnd:x}): recovery refuses the heap"));
        }
        long bytes = 0;
        foreach (var entry in entries)
        {
            bytes += entry.Length;
        }
        return (entries.Count, bytes);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>What <see cref="PoolInspector.InspectHeap"/> found in a transactional heap.</summary>
public sealed class HeapInspection
{
    private readonly HeapLayout _layout;

    internal HeapInspection(bool headerValid, IReadOnlyList<string> problems, HeapLayout layout, IReadOnlyList<HeapLaneInspection> lanes, int allocatedObjects)
    {
        HeaderValid = headerValid;
        Problems = problems;
        _layout = layout;
        Lanes = lanes;
        AllocatedObjects = allocatedObjects;
    }

    /// <summary>Whether the header validated (the geometry below is known only then; otherwise it is all 0).</summary>
    public bool HeaderValid { get; }

    /// <summary>Every problem found, one sentence each; empty for a sound heap.</summary>
    public IReadOnlyList<string> Problems { get; }

    /// <summary>The heap's region length.</summary>
    public long RegionLength => _layout.RegionLength;

    /// <summary>The number of lanes.</summary>
    public int LaneCount => _layout.LaneCount;

    /// <summary>The undo log capacity of each lane in bytes.</summary>
    public int LaneLogSize => _layout.LaneLogSize;

    /// <summary>The size of the root area in bytes.</summary>
    public int RootSize => _layout.RootSize;

    /// <summary>The size of one object in bytes.</summary>
    public int ObjectSize => _layout.ObjectSize;

    /// <summary>The number of objects.</summary>
    public int ObjectCount => _layout.ObjectCount;

    /// <summary>How many objects the allocation map marks allocated.</summary>
    public int AllocatedObjects { get; }

    /// <summary>Each lane: its last finished generation and what recovery would roll back.</summary>
    public IReadOnlyList<HeapLaneInspection> Lanes { get; }
}

/// <summary>One lane of a transactional heap, as <see cref="PoolInspector.InspectHeap"/> read it.</summary>
public sealed class HeapLaneInspection
{
    internal HeapLaneInspection(int lane, ulong? generation, int pendingEntries, long pendingBytes)
    {
        Lane = lane;
        Generation = generation;
        PendingEntries = pendingEntries;
        PendingBytes = pendingBytes;
    }

    /// <summary>The lane's index.</summary>
    public int Lane { get; }

    /// <summary>The last finished generation, or <see langword="null"/> when the generation word is damaged.</summary>
    public ulong? Generation { get; }

    /// <summary>How many undo entries of an unfinished transaction recovery would write back (0: nothing to roll back).</summary>
    public int PendingEntries { get; }

    /// <summary>How many bytes that rollback would write back.</summary>
    public long PendingBytes { get; }
}
