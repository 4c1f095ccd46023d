using DirectPmem.Geometry;
using DirectPmem.Persistence;

namespace DirectPmem.Mapping;

/// <summary>How to map a source. Every mapping is shared and never inherited by a forked child.</summary>
public sealed record DaxMappingOptions
{
    /// <summary>The default options: the whole source, 4 KiB pages, read-write.</summary>
    public static DaxMappingOptions Default { get; } = new();

    /// <summary>The offset in the source of the first mapped byte; a multiple of <see cref="PageSize"/>.</summary>
    public long Offset { get; init; }

    /// <summary>The number of bytes to map, a multiple of <see cref="PageSize"/>; <see langword="null"/> maps to the end of the source.</summary>
    public long? Length { get; init; }

    /// <summary>
    /// The mapping's page size: its offset, length and virtual start address are multiples of it.
    /// For a device, <see langword="null"/> means the device's own alignment.
    /// </summary>
    public PageSize? PageSize { get; init; }

    /// <summary>
    /// Refuse the mapping unless the kernel really backs it with pages of <see cref="PageSize"/>
    /// (hugetlb, device-DAX, or transparent huge pages verified after prefaulting) instead of
    /// only enforcing the alignment rules.
    /// </summary>
    public bool RequirePageSize { get; init; }

    /// <summary>Prefault every page at creation (MADV_POPULATE_WRITE, or MADV_POPULATE_READ when read-only), so no fault happens later.</summary>
    public bool Populate { get; init; }

    /// <summary>Lock the pages in memory (mlock); subject to RLIMIT_MEMLOCK.</summary>
    public bool LockInMemory { get; init; }

    /// <summary>Map PROT_READ only; no writable span is ever handed out.</summary>
    public bool ReadOnly { get; init; }

    /// <summary>How anonymous mappings ask for huge pages. Files and memfds take their pages from the source.</summary>
    public HugePages HugePages { get; init; }

    /// <summary>
    /// Refuse the mapping (with <see cref="PmemCapabilityException"/> saying why) unless its data can
    /// be made durable at this granularity or a finer one (Byte is finer than CacheLine, which is
    /// finer than Page; None means volatile). <see langword="null"/> accepts whatever the backing has.
    /// </summary>
    public PersistGranularity? RequiredGranularity { get; init; }

    /// <summary>
    /// Test mode: flush cache lines and fence (cache-line granularity) whatever the backing, as
    /// PMDK's PMEM_IS_PMEM_FORCE=1 does, so that benchmarks measure the instructions on machines
    /// without persistent memory. Data in a page-cache file is then NOT durable across a power
    /// failure (it is never msynced); never use this for real data.
    /// </summary>
    public bool ForceCacheLineGranularity { get; init; }
}
