namespace DirectPmem.Garnet;

/// <summary>
/// One (device name, segment) pair held in a slot: its chunk map in memory. Chunks[i] is the
/// chunk that holds bytes [i * ChunkSize, (i + 1) * ChunkSize) of the segment, or -1 for a hole.
/// The array is replaced (never resized in place) under the volume lock and read without it.
/// </summary>
internal sealed class VolumeSegment
{
    private int[] _chunks;

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
    internal volatile bool Removed;

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
