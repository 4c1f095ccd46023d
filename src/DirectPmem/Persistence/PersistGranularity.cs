namespace DirectPmem.Persistence;

/// <summary>
/// The smallest unit a mapping makes durable, and so which primitive its persist uses
/// (the granularities of PMDK's <c>pmem2_granularity</c>, plus <see cref="None"/>).
/// </summary>
public enum PersistGranularity
{
    /// <summary>Volatile memory (anonymous, memfd, tmpfs, hugetlbfs): nothing survives a restart; persist only orders stores.</summary>
    None,

    /// <summary>Page cache: durable after msync(MS_SYNC) of every page touched.</summary>
    Page,

    /// <summary>Persistent memory with ADR: durable after the cache lines are flushed (CLWB/CLFLUSHOPT/CLFLUSH) and a fence drains them.</summary>
    CacheLine,

    /// <summary>Persistent memory with eADR (caches in the persistence domain): durable after a fence; no flush needed.</summary>
    Byte,
}
