namespace DirectPmem.Garnet;

/// <summary>The geometry of a new <see cref="PmemVolume"/>, fixed when it is formatted, and whether it may be made on volatile memory.</summary>
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

    /// <summary>
    /// Whether <see cref="PmemVolume.Create(DirectPmem.Mapping.DaxMapping, PmemVolumeOptions?, bool)"/> and
    /// <see cref="PmemVolume.OpenOrCreate"/> may make the volume's pool on memory whose contents do not survive a
    /// reboot or power loss (anonymous memory, a memfd, a file on tmpfs or hugetlbfs): passed to the pool as
    /// <see cref="DirectPmem.Storage.PoolCreateOptions.AllowVolatile"/>. Off by default, so such a create is refused with
    /// <see cref="DirectPmem.Storage.PoolVolatileBackingException"/>; the pool records the choice
    /// (<see cref="DirectPmem.Storage.PmemPool.CreatedOnVolatileMemory"/>). A volume made in an existing pool
    /// (<see cref="PmemVolume.CreateInPool"/>) takes the pool's own choice and ignores this.
    /// </summary>
    public bool AllowVolatile { get; init; }
}
