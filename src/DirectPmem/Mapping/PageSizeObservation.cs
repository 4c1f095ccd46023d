using DirectPmem.Geometry;

namespace DirectPmem.Mapping;

/// <summary>
/// What <c>/proc/self/smaps</c> says backs a mapping: the kernel page size, how much of it is
/// mapped by huge page-table entries, and the VMA flags. Sizes are in bytes, summed over every
/// VMA that overlaps the mapping.
/// </summary>
public sealed class PageSizeObservation
{
    internal PageSizeObservation(long kernelPageSize, long mmuPageSize, long size, long rss, long anonHugePages, long shmemPmdMapped,
        long filePmdMapped, long hugetlbBytes, bool dontFork, string vmFlags)
    {
        KernelPageSize = kernelPageSize;
        MmuPageSize = mmuPageSize;
        Size = size;
        Rss = rss;
        AnonHugePages = anonHugePages;
        ShmemPmdMapped = shmemPmdMapped;
        FilePmdMapped = filePmdMapped;
        HugetlbBytes = hugetlbBytes;
        DontFork = dontFork;
        VmFlags = vmFlags;
    }

    /// <summary>The page size the kernel uses for the VMA (2 MiB for hugetlb and 2 MiB-aligned device-DAX).</summary>
    public long KernelPageSize { get; }

    /// <summary>The page size the MMU uses for the VMA.</summary>
    public long MmuPageSize { get; }

    /// <summary>The size of the VMAs.</summary>
    public long Size { get; }

    /// <summary>The bytes resident.</summary>
    public long Rss { get; }

    /// <summary>Bytes of anonymous memory mapped by transparent huge pages.</summary>
    public long AnonHugePages { get; }

    /// <summary>Bytes of shared memory mapped by PMD entries.</summary>
    public long ShmemPmdMapped { get; }

    /// <summary>Bytes of file memory mapped by PMD entries.</summary>
    public long FilePmdMapped { get; }

    /// <summary>Bytes of hugetlb memory (Shared_Hugetlb + Private_Hugetlb).</summary>
    public long HugetlbBytes { get; }

    /// <summary>Whether every VMA has the <c>dc</c> flag (MADV_DONTFORK).</summary>
    public bool DontFork { get; }

    /// <summary>The VmFlags line of the first VMA, for diagnostics.</summary>
    public string VmFlags { get; }

    /// <summary>
    /// The page size that really backs the whole mapping: the kernel page size when it is a huge
    /// size (hugetlb, device-DAX), <see cref="PageSize.Pmd"/> when every resident byte is mapped by
    /// PMD entries and the whole mapping is resident, and <see cref="PageSize.Pte"/> otherwise.
    /// </summary>
    public PageSize ObservedPageSize
    {
        get
        {
            if (PageSizes.TryFromBytes(KernelPageSize, out PageSize kernel) && kernel != PageSize.Pte)
            {
                return kernel;
            }
            long pmd = AnonHugePages + ShmemPmdMapped + FilePmdMapped;
            return Rss > 0 && Rss == Size && pmd == Rss ? PageSize.Pmd : PageSize.Pte;
        }
    }
}
