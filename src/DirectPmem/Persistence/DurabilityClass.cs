namespace DirectPmem.Persistence;

/// <summary>
/// What the memory behind a mapping is, as far as durability goes: the one fact a source tells the
/// persistence layer (PMDK's <c>pmem2_source</c> answering "is this pmem?"), from which
/// <see cref="PersistencePlatform.Choose"/> decides the mapping's <see cref="PersistGranularity"/>.
/// </summary>
internal enum DurabilityClass
{
    /// <summary>Anonymous memory, memfd, tmpfs, hugetlbfs: nothing survives a restart.</summary>
    Volatile,

    /// <summary>An ordinary file behind the page cache: durable after msync.</summary>
    PageCache,

    /// <summary>A file on a DAX file system mapped with MAP_SYNC: cache flushes, with msync as the fallback.</summary>
    FileSystemDax,

    /// <summary>A device-DAX device: cache flushes only (msync does nothing there).</summary>
    DeviceDax,
}
