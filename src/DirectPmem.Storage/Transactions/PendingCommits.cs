namespace DirectPmem.Storage.Transactions;

/// <summary>
/// Per lane, the generation of its last commit while nothing on the media confirms it but its
/// commit record (0 otherwise), and the ranges that commit's data hash covers (its footprint: the
/// ranges it declared, with the objects it allocated). A transaction of another lane must confirm
/// such a commit (raise its lane word) before it changes any byte of the footprint in place, since
/// the change would break the hash; bytes outside the footprint do not affect it, so lanes that
/// work on different data never touch each other's lines (heap format 2's 2-thread cost was every
/// transaction raising every other busy lane's word).
/// </summary>
/// <remarks>
/// <para>One <see cref="long"/> array, <see cref="Stride"/> longs (256 bytes) per lane, so that a lane's
/// first lines are its own: generation @0, version @1 (odd while its owner rewrites the footprint),
/// range count @2 (-1: too many to list, every range overlaps), then up to <see cref="MaxRanges"/>
/// [start, end) pairs of mapping offsets. Only the lane's owner writes its slot; any lane reads it.</para>
/// <para>A seqlock without waiting: a reader that sees the version or the generation change while it
/// reads treats the footprint as overlapping (it confirms; raising a word to a committed generation
/// is always safe). Generations only grow and a slot goes 0 only when its owner's own undo entry
/// confirmed it, so a reader that sees the same non-zero generation before and after read a footprint
/// that covers it: a commit whose predecessor is still pending (the lane changed nothing in place in
/// between) appends its ranges instead of replacing them, so the slot covers every pending commit.</para>
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
    /// its commit fence) with the ranges of <paramref name="footprint"/>.
    /// </summary>
    public void Publish(int lane, ulong generation, RangeSet footprint)
    {
        long[] s = _slots;
        int b = Lead + lane * Stride;
        // Still pending: the lane changed nothing in place since, so its last commit is unconfirmed too.
        bool append = s[b] != 0;
        long version = s[b + 1];
        // Odd first. Every store after it is a release store, so none becomes visible before it
        // (plain stores on x86). No locked instruction: right after the commit's flushes and
        // drain, one would wait for the write-backs.
        Volatile.Write(ref s[b + 1], version + 1);
        long count = append ? s[b + 2] : 0;
        for (int i = 0; i < footprint.Count && count >= 0; i++)
        {
            if (count == MaxRanges)
            {
                count = -1;
                break;
            }
            Volatile.Write(ref s[b + 3 + 2 * count], footprint.StartAt(i));
            Volatile.Write(ref s[b + 4 + 2 * count], footprint.EndAt(i));
            count++;
        }
        Volatile.Write(ref s[b + 2], count);
        Volatile.Write(ref s[b + 1], version + 2);
        Volatile.Write(ref s[b], (long)generation);
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
