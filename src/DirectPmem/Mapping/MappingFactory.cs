using DirectPmem.Geometry;
using DirectPmem.Interop;
using DirectPmem.Persistence;

namespace DirectPmem.Mapping;

/// <summary>Maps a validated request and wraps it in a <see cref="DaxMapping"/> with its persistence chosen once.</summary>
internal static class MappingFactory
{
    internal static DaxMapping Create(in MapRequest request)
    {
        // Decided before mapping, so that a refused granularity maps nothing.
        PersistGranularity granularity = PersistencePlatform.Choose(request.Backing, request.ForceCacheLineGranularity,
            request.RequiredGranularity, request.Path);
        SafeMappingHandle handle = Mapper.Map(in request);
        return new DaxMapping(handle, request.Length, in request, granularity);
    }

    /// <summary>
    /// The persistence each backing really has on this platform (after DIRECTPMEM_FORCE_GRANULARITY, without options):
    /// device-DAX and MAP_SYNC DAX files flush cache lines (drain only under eADR; msync for a DAX
    /// file when no flush routine can run), page-cache files msync, everything else is volatile.
    /// </summary>
    internal static PersistGranularity GranularityFor(MappingBacking backing)
        => PersistencePlatform.Choose(backing, forceCacheLine: false, required: null, path: null);

    /// <summary>
    /// A mapping of shared anonymous memory whose flushes and drains go to <paramref name="hook"/>
    /// (the crash-consistency simulator); it reports cache-line granularity like real pmem.
    /// </summary>
    internal static DaxMapping CreateSimulated(long length, PageSize pageSize, IPersistenceHook hook)
    {
        RangeValidator.ValidateMapRange(0, length, pageSize, long.MaxValue, "simulated device", "offset", nameof(length));
        var request = new MapRequest(null, "simulated", MappingBacking.Simulated, 0, length, pageSize,
            ReadOnly: false, ExtraFlags: 0, HugePages.None, Populate: false, LockInMemory: false);
        SafeMappingHandle handle = Mapper.Map(in request);
        return new DaxMapping(handle, length, in request, PersistGranularity.CacheLine, hook);
    }

    /// <summary>Maps shared anonymous memory, with hugetlb or transparent huge pages as asked.</summary>
    internal static DaxMapping CreateAnonymous(long length, DaxMappingOptions options)
    {
        bool hugetlb = options.HugePages == HugePages.Hugetlb;
        PageSize pageSize = options.PageSize ?? (hugetlb ? PageSize.Pmd : PageSize.Pte);
        PageSizes.Validate(pageSize, nameof(options.PageSize));
        if (hugetlb && pageSize == PageSize.Pte)
        {
            throw new ArgumentException("hugetlb pages are 2 MiB or 1 GiB; set PageSize to Pmd or Pud.", nameof(options));
        }
        if (options.Offset != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.Offset, "anonymous memory has no offset; Offset must be 0.");
        }
        RangeValidator.ValidateMapRange(0, length, pageSize, long.MaxValue, "anonymous memory", "offset", nameof(length));
        if (options.RequirePageSize && pageSize != PageSize.Pte && options.HugePages == HugePages.None)
        {
            throw new PmemCapabilityException(
                $"{pageSize.ToDisplayString()} pages were required but no huge pages were asked for: set HugePages to Hugetlb (guaranteed) or Transparent (verified after prefault).");
        }

        int extraFlags = hugetlb ? Libc.MAP_HUGETLB | (pageSize == PageSize.Pud ? Libc.MAP_HUGE_1GB : Libc.MAP_HUGE_2MB) : 0;
        bool verifyThp = options.RequirePageSize && options.HugePages == HugePages.Transparent && pageSize != PageSize.Pte;
        var request = new MapRequest(null, null, hugetlb ? MappingBacking.Hugetlb : MappingBacking.Anonymous, 0, length, pageSize,
            options.ReadOnly, extraFlags, options.HugePages, options.Populate || verifyThp, options.LockInMemory)
        {
            ForceCacheLineGranularity = options.ForceCacheLineGranularity,
            RequiredGranularity = options.RequiredGranularity,
        };
        DaxMapping mapping = Create(in request);
        if (verifyThp)
        {
            PageSizeObservation seen = mapping.ObservePageSize();
            if (seen.ObservedPageSize != pageSize)
            {
                mapping.Dispose();
                throw new PmemCapabilityException(
                    $"Transparent huge pages did not back the mapping: {seen.AnonHugePages + seen.ShmemPmdMapped} of {length} bytes are in huge pages " +
                    "(shared anonymous memory follows /sys/kernel/mm/transparent_hugepage/shmem_enabled). Use HugePages.Hugetlb with reserved pages for a guarantee.");
            }
        }
        return mapping;
    }
}
