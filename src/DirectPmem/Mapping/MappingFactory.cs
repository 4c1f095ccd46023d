using DirectPmem.Geometry;
using DirectPmem.Interop;
using DirectPmem.Persistence;

namespace DirectPmem.Mapping;

/// <summary>
/// The one map pipeline (PMDK's <c>pmem2_map_new</c>): every public map entry point (PmemFile.Map,
/// DaxDevice.Map, allocator ranges, anonymous memory, the simulator) builds a <see cref="MapRequest"/>
/// from (options, source, window) here, maps it, and wraps it with its persistence chosen once.
/// </summary>
internal static unsafe class MappingFactory
{
    /// <summary>Validates, maps and wraps in one step.</summary>
    internal static DaxMapping Map(MapSource source, DaxMappingOptions? options, long windowOffset = 0, long? windowLength = null,
        PageSize? windowAlign = null, string? what = null)
    {
        MapRequest request = MapRequest.Create(source, options ?? DaxMappingOptions.Default, windowOffset, windowLength, windowAlign, what);
        return Map(in request);
    }

    /// <summary>Maps a validated request.</summary>
    internal static DaxMapping Map(in MapRequest request)
    {
        // Resolved before mmap: a failure maps nothing.
        DeepFlushControl? deepFlush = request.Source.RegionDeepFlush;
        SafeMappingHandle handle = Mapper.Map(in request);
        DaxMapping mapping;
        PersistOps? ops = null;
        try
        {
            byte* address = (byte*)handle.DangerousGetHandle();
            ops = request.Source.CreateOps(address, request.Length) ?? (request.Granularity == PersistGranularity.Page
                ? new PageOps(address, request.SourceOffset, request.Length, request.Path, request.Source.TruncationWatch)
                : PersistOps.Shared(request.Granularity));
            mapping = new DaxMapping(handle, in request, ops, deepFlush);
        }
        catch
        {
            // The descriptor reference a PageOps took is the mapping's to drop, and there is none.
            ops?.Release();
            handle.Dispose();
            throw;
        }
        if (request.VerifyHugePages)
        {
            PageSizeObservation seen = mapping.ObservePageSize();
            if (seen.ObservedPageSize != request.PageSize)
            {
                mapping.Dispose();
                throw new PmemCapabilityException(
                    $"Transparent huge pages did not back the mapping of {request.What}: {seen.AnonHugePages + seen.ShmemPmdMapped} of {request.Length} bytes are in huge pages " +
                    "(shared memory follows /sys/kernel/mm/transparent_hugepage/shmem_enabled). Use HugePages.Hugetlb with reserved pages for a guarantee.");
            }
        }
        return mapping;
    }

    /// <summary>
    /// The persistence each kind of backing really has on this platform (after DIRECTPMEM_FORCE_GRANULARITY, without options):
    /// device-DAX and MAP_SYNC DAX files flush cache lines (drain only under eADR; msync for a DAX
    /// file when no flush routine can run), page-cache files msync, everything else is volatile.
    /// </summary>
    internal static PersistGranularity GranularityFor(MappingBacking backing)
        => PersistencePlatform.Choose(MapSources.DurabilityOf(backing), forceCacheLine: false, required: null, MapSources.Describe(backing));

    /// <summary>Maps shared anonymous memory, with hugetlb or transparent huge pages as asked.</summary>
    internal static DaxMapping CreateAnonymous(long length, DaxMappingOptions options)
    {
        if (options.Length is long given && given != length)
        {
            throw new ArgumentException(
                $"DaxMappingOptions.Length {given} contradicts the length argument {length}; leave Length null for anonymous memory.", nameof(options));
        }
        bool hugetlb = options.HugePages == HugePages.Hugetlb;
        PageSize pageSize = options.PageSize ?? (hugetlb ? PageSize.Pmd : PageSize.Pte);
        return Map(new AnonymousSource(options.HugePages, pageSize), options with { Length = length });
    }
}
