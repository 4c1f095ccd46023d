namespace DirectPmem.Storage.Transactions;

/// <summary>
/// Per lane, the generation of its last commit while the media does not yet say it is finished
/// and applied (0 otherwise), and the footprint that recovery of that lane may still write or judge:
/// for an undo commit the ranges its data hash covers (the ranges it declared, with the objects it
/// allocated), for a redo commit the home ranges of its redo entries, together with those of the
/// lane's previous redo commit when recovery may replay that one too. A transaction of another lane
/// must settle such a commit (make its home bytes durable, then raise its lane word, then drain;
/// <see cref="TransactionalHeap.SettleOverlappingLanes"/>) before it changes a byte of the footprint
/// in place or commits a change to one, since recovery would otherwise roll the change back (a broken
/// hash) or replay the older commit over it; bytes outside the footprint do not matter, so lanes that
/// work on different data never touch each other's lines.
/// </summary>
/// <remarks>
/// <para>One <see cref="long"/> array, <see cref="Stride"/> longs (256 bytes) per lane, so that a lane's
/// first lines are its own: generation @0, version @1 (odd while its owner rewrites the footprint),
/// range count @2 (-1: too many to list, every range overlaps), then up to <see cref="MaxRanges"/>
/// [start, end) pairs of mapping offsets. Only the lane's owner writes its slot; any lane reads it.</para>
/// <para>A seqlock: a reader that sees the version or the generation change while it reads treats
/// the footprint as overlapping and reads it again before flushing it. Every commit replaces the
/// footprint with the ranges recovery may still touch (its own, and its predecessor's when that is
/// a redo commit the lane has not settled itself), so a reader that sees the same non-zero
/// generation before and after read a footprint that covers every commit it must settle.</para>
/// </remarks>
internal sealed class PendingCommits
{
    public const int Stride = 32;
    public const int MaxRanges = (Stride - 3) / 2;
    private const int Lead = 8; // the first line after the array header belongs to no lane

    private readonly long[] _slots;

    public PendingCommits(int lanes) => _slots = new long[Lead + lanes * Stride];

    /// <summary>The pending generation of <paramref name="lane"/>, 0 when none.</summary>
    public long Generation(int lane) => Volatile.Read(ref _slots[Lead + lane * Stride]);

    /// <summary>
    /// The owner of <paramref name="lane"/> publishes its commit of <paramref name="generation"/> (after
    /// its commit fence) with the ranges of <paramref name="footprint"/> and, when not null,
    /// <paramref name="more"/> (the lane's previous commit, when recovery may still replay it).
    /// </summary>
    public void Publish(int lane, ulong generation, RangeSet footprint, RangeSet? more = null)
    {
        long[] s = _slots;
        int b = Lead + lane * Stride;
        long version = s[b + 1];
        // Odd first. Every store after it is a release store, so none becomes visible before it
        // (plain stores on x86). No locked instruction: right after the commit's flushes and
        // drain, one would wait for the write-backs.
        Volatile.Write(ref s[b + 1], version + 1);
        long count = 0;
        count = Append(s, b, count, footprint);
        if (more is not null)
        {
            count = Append(s, b, count, more);
        }
        Volatile.Write(ref s[b + 2], count);
        Volatile.Write(ref s[b + 1], version + 2);
        Volatile.Write(ref s[b], (long)generation);
    }

    private static long Append(long[] s, int b, long count, RangeSet ranges)
    {
        for (int i = 0; i < ranges.Count && count >= 0; i++)
        {
            if (count == MaxRanges)
            {
                return -1;
            }
            Volatile.Write(ref s[b + 3 + 2 * count], ranges.StartAt(i));
            Volatile.Write(ref s[b + 4 + 2 * count], ranges.EndAt(i));
            count++;
        }
        return count;
    }

    /// <summary>
    /// Adds the footprint of <paramref name="lane"/>'s pending commits, as published with
    /// <paramref name="generation"/>, to <paramref name="into"/>. False when the owner republished
    /// while it was read (read again). A footprint of too many ranges to list adds nothing: only an
    /// undo commit publishes one (its data was durable at its commit fence; a redo commit of that many
    /// ranges settles itself), so there are no home bytes to flush.
    /// </summary>
    public bool TryCopyFootprint(int lane, long generation, RangeSet into)
    {
        long[] s = _slots;
        int b = Lead + lane * Stride;
        long version = Volatile.Read(ref s[b + 1]);
        long count = Volatile.Read(ref s[b + 2]);
        if ((version & 1) != 0 || count > MaxRanges)
        {
            return false;
        }
        for (int i = 0; i < count; i++)
        {
            into.Add(Volatile.Read(ref s[b + 3 + 2 * i]), Volatile.Read(ref s[b + 4 + 2 * i]));
        }
        return Volatile.Read(ref s[b + 1]) == version && Volatile.Read(ref s[b]) == generation;
    }

    /// <summary>The owner of <paramref name="lane"/>: its pending commit is confirmed (by its own durable undo entry or its word).</summary>
    public void Clear(int lane)
    {
        ref long generation = ref _slots[Lead + lane * Stride];
        if (generation != 0)
        {
            Volatile.Write(ref generation, 0);
        }
    }

    /// <summary>
    /// The pending generation of <paramref name="lane"/> when its footprint may overlap
    /// <paramref name="ranges"/> (0 when nothing is pending or nothing overlaps).
    /// </summary>
    public long Overlapping(int lane, RangeSet ranges)
    {
        long[] s = _slots;
        int b = Lead + lane * Stride;
        long generation = Volatile.Read(ref s[b]);
        if (generation == 0)
        {
            return 0;
        }
        long version = Volatile.Read(ref s[b + 1]);
        if ((version & 1) != 0)
        {
            return generation;
        }
        long count = Volatile.Read(ref s[b + 2]);
        if (count < 0 || count > MaxRanges)
        {
            return generation;
        }
        bool overlaps = false;
        for (int i = 0; i < count && !overlaps; i++)
        {
            overlaps = ranges.Overlaps(Volatile.Read(ref s[b + 3 + 2 * i]), Volatile.Read(ref s[b + 4 + 2 * i]));
        }
        if (overlaps || Volatile.Read(ref s[b + 1]) != version || Volatile.Read(ref s[b]) != generation)
        {
            return generation;
        }
        return 0;
    }
}
