namespace DirectPmem.Garnet;

/// <summary>
/// One (device name, segment) pair held in a slot: its chunk map in memory. Chunks[i] is the
/// chunk that holds bytes [i * ChunkSize, (i + 1) * ChunkSize) of the segment, or -1 for a hole.
/// The array is replaced (never resized in place) under the volume lock and read without it.
/// </summary>
/// <remarks>
/// I/O enters the segment (<see cref="TryEnter"/>) before it reads the chunk map and leaves it
/// when it is done with the chunks. A delete marks the segment removed; its chunks go back to the
/// free list only when no I/O is inside (at once, or when the last one leaves), so no chunk
/// another segment is given can still be written or read through this one.
/// </remarks>
internal sealed class VolumeSegment
{
    // The number of I/O operations inside the segment, plus RemovedBit once it is deleted.
    private const int RemovedBit = 1 << 30;

    private int[] _chunks;
    private int _state;

    internal VolumeSegment(string name, int segment, int slot, long sequence)
    {
        Name = name;
        Segment = segment;
        Slot = slot;
        Sequence = sequence;
        _chunks = [];
    }

    internal string Name { get; }

    internal int Segment { get; }

    internal int Slot { get; }

    internal long Sequence { get; }

    /// <summary>Set under the volume lock once the slot is freed; a device then looks the pair up again.</summary>
    internal bool Removed => (Volatile.Read(ref _state) & RemovedBit) != 0;

    /// <summary>The number of I/O operations inside the segment.</summary>
    internal int Users => Volatile.Read(ref _state) & ~RemovedBit;

    /// <summary>Counts an I/O in, unless the segment was removed (then false: look the pair up again).</summary>
    internal bool TryEnter()
    {
        int state = Volatile.Read(ref _state);
        while ((state & RemovedBit) == 0)
        {
            int seen = Interlocked.CompareExchange(ref _state, state + 1, state);
            if (seen == state)
                return true;
            state = seen;
        }
        return false;
    }

    /// <summary>Counts an I/O out. True when it was the last one inside a removed segment: the caller then releases the chunks.</summary>
    internal bool Exit() => Interlocked.Decrement(ref _state) == RemovedBit;

    /// <summary>Marks the segment removed (caller holds the volume lock). True when no I/O is inside: the chunks may be released at once.</summary>
    internal bool MarkRemoved() => Interlocked.Or(ref _state, RemovedBit) == 0;

    /// <summary>How many chunks the segment owns.</summary>
    internal int ChunkCount { get; set; }

    internal int[] Chunks => Volatile.Read(ref _chunks);

    /// <summary>The chunk holding the segment's chunk <paramref name="index"/>, or -1.</summary>
    internal int ChunkAt(long index)
    {
        int[] chunks = Volatile.Read(ref _chunks);
        return (ulong)index < (ulong)chunks.Length ? Volatile.Read(ref chunks[index]) : -1;
    }

    /// <summary>Records chunk <paramref name="chunk"/> at <paramref name="index"/>; caller holds the volume lock.</summary>
    internal void SetChunk(int index, int chunk)
    {
        int[] chunks = _chunks;
        if (index >= chunks.Length)
        {
            int length = Math.Max(Math.Max(4, chunks.Length * 2), index + 1);
            int[] grown = new int[length];
            chunks.CopyTo(grown, 0);
            grown.AsSpan(chunks.Length).Fill(-1);
            grown[index] = chunk;
            Volatile.Write(ref _chunks, grown);
            return;
        }
        Volatile.Write(ref chunks[index], chunk);
    }

    /// <summary>The bytes up to the end of the last chunk the segment owns (0 when it owns none).</summary>
    internal long AllocatedLength(int chunkShift)
    {
        int[] chunks = Volatile.Read(ref _chunks);
        for (int i = chunks.Length - 1; i >= 0; i--)
        {
            if (chunks[i] >= 0)
                return (long)(i + 1) << chunkShift;
        }
        return 0;
    }
}
