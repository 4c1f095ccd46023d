namespace DirectPmem.Garnet;

/// <summary>The geometry of a new <see cref="PmemVolume"/>, fixed when it is formatted.</summary>
public sealed record PmemVolumeOptions
{
    /// <summary>
    /// The unit of allocation in bytes: a power of two, at least 4 KiB and at most 64 MiB. Every
    /// segment of every named device occupies whole chunks, so a small file (checkpoint metadata)
    /// costs one chunk. Default 64 KiB.
    /// </summary>
    public long ChunkSize { get; init; } = 64 * 1024;

    /// <summary>
    /// How many (device name, segment) pairs the volume can hold at once; each takes a 256-byte
    /// slot. Default 4096 (1 MiB of slots).
    /// </summary>
    public int SlotCount { get; init; } = 4096;
}
