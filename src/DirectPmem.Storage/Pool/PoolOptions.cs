namespace DirectPmem.Storage;

/// <summary>How <see cref="PmemPool"/> creates a pool.</summary>
public sealed record PoolCreateOptions
{
    /// <summary>The default options.</summary>
    public static PoolCreateOptions Default { get; } = new();

    /// <summary>
    /// Bytes reserved for the library's own future structures after the pool directory (which takes the first
    /// 8 KiB of the reserved area whatever this says), a multiple of 4096; zeroed at creation. 0 by default.
    /// </summary>
    public long ReservedLength { get; init; }

    /// <summary>Whether to overwrite a mapping that already holds an intact pool header; off by default (refused).</summary>
    public bool Overwrite { get; init; }

    /// <summary>
    /// Create the pool even though its mapping is volatile memory (<see cref="DirectPmem.Mapping.MappingBacking.Anonymous"/>,
    /// <see cref="DirectPmem.Mapping.MappingBacking.SharedMemory"/>: a memfd or a file on tmpfs such as the emulated default
    /// in <c>/dev/shm</c>, <see cref="DirectPmem.Mapping.MappingBacking.Hugetlb"/>), whose contents a reboot or a power loss
    /// erases whatever is flushed. Off by default: such a create throws <see cref="PoolVolatileBackingException"/>. Tests,
    /// benchmarks and demonstrations set it; the backing is recorded in the pool (<see cref="PmemPool.CreatedOnBacking"/>),
    /// so <c>dpmem info</c> and <c>dpmem check</c> show that the pool was created on volatile memory.
    /// </summary>
    public bool AllowVolatile { get; init; }

    /// <summary>The sysfs root the NVDIMM dirty-shutdown counts are read from; <c>/sys</c> by default (tests use fixture trees).</summary>
    public string SysfsRoot { get; init; } = "/sys";

    /// <summary>
    /// The NVDIMM region (<c>region0</c>) whose DIMMs' dirty-shutdown counts the pool watches; <see langword="null"/>
    /// (the default) takes the region behind the mapping (<see cref="DirectPmem.Mapping.DaxMapping.NvdimmRegion"/>).
    /// Read under <see cref="SysfsRoot"/>.
    /// </summary>
    public string? NvdimmRegion { get; init; }
}

/// <summary>How <see cref="PmemPool"/> opens a pool.</summary>
public sealed class PoolOpenOptions
{
    /// <summary>The default options.</summary>
    public static PoolOpenOptions Default { get; } = new();

    /// <summary>Open read-only: nothing is written (no repair, no in-use mark). Off by default.</summary>
    public bool ReadOnly { get; init; }

    /// <summary>
    /// The sysfs root the NVDIMM dirty-shutdown counts are read from, and, for <see cref="PmemPool.OpenFile"/>,
    /// the file's bad-block list; <c>/sys</c> by default (tests use fixture trees).
    /// </summary>
    public string SysfsRoot { get; init; } = "/sys";

    /// <summary>
    /// The NVDIMM region (<c>region0</c>) whose DIMMs' dirty-shutdown counts the pool watches; <see langword="null"/>
    /// (the default) takes the region behind the mapping (<see cref="DirectPmem.Mapping.DaxMapping.NvdimmRegion"/>).
    /// Read under <see cref="SysfsRoot"/>.
    /// </summary>
    public string? NvdimmRegion { get; init; }

    /// <summary>What an open does when known bad ranges (media errors) overlap the pool; <see cref="PoolBadBlockPolicy.Refuse"/> by default.</summary>
    public PoolBadBlockPolicy BadBlockPolicy { get; init; }

    /// <summary>
    /// Accept a writable open whose mapping makes data durable more weakly than the pool records it was created
    /// with (<see cref="PmemPool.Durability"/>; the order is volatile, page, cache line, byte). Off by default:
    /// such an open throws <see cref="PoolDurabilityException"/>. Read-only opens write nothing and are never refused for it.
    /// </summary>
    public bool AllowWeakerDurability { get; init; }
}

/// <summary>
/// What <see cref="PmemPool"/> does when the kernel lists bad ranges (media errors) inside the pool's
/// range at open. The list is read before anything in the pool is read; a header copy inside a
/// listed range is never loaded (a load would meet the poison) and counts as lost.
/// </summary>
public enum PoolBadBlockPolicy
{
    /// <summary>Refuse the open with a <see cref="PoolMediaErrorException"/> naming every bad range in pool offsets (the default, as PMDK's pools do).</summary>
    Refuse,

    /// <summary>
    /// Open read-only: nothing is written (no repair, no in-use mark). A header copy in a bad range is
    /// read from the other copy and the repair it needs is reported in <see cref="PmemPool.HeaderRepair"/>, not done.
    /// </summary>
    OpenReadOnly,

    /// <summary>
    /// Open as if the ranges were not listed; the application must keep its own loads and stores out of
    /// <see cref="PmemPool.KnownBadRanges"/>. A header or directory copy in a bad range is not written over (a
    /// store there ends the process): the other copy serves and the pool opens read-only, with the range named
    /// in <see cref="PmemPool.ReadOnlyReason"/>, until the range is cleared.
    /// </summary>
    Proceed,
}

/// <summary>Which copy of the header an open repaired from the other.</summary>
public enum PoolHeaderRepair
{
    /// <summary>Both copies were intact and equal.</summary>
    None,
    /// <summary>The primary header was torn, damaged or unreadable (a media error) and was restored from the intact backup.</summary>
    PrimaryRestoredFromBackup,
    /// <summary>The backup header was torn, damaged, stale or unreadable (a media error) and was restored from the intact primary.</summary>
    BackupRestoredFromPrimary,
}
