using DirectPmem.Geometry;

namespace DirectPmem.Mapping;

/// <summary>
/// What <c>/proc/self/smaps</c> says backs a mapping: the kernel page size, how much of it is
/// mapped by huge page-table entries, and the VMA flags. Sizes are in bytes, summed over every
/// VMA that overlaps the mapping.
/// </summary>
/// <param name="KernelPageSize">The page size the kernel uses for the VMA (2 MiB for hugetlb and 2 MiB-aligned device-DAX).</param>
/// <param name="MmuPageSize">The page size the MMU uses for the VMA.</param>
/// <param name="Size">The size of the VMAs.</param>
/// <param name="Rss">The bytes resident.</param>
/// <param name="AnonHugePages">Bytes of anonymous memory mapped by transparent huge pages.</param>
/// <param name="ShmemPmdMapped">Bytes of shared memory mapped by PMD entries.</param>
/// <param name="FilePmdMapped">Bytes of file memory mapped by PMD entries.</param>
/// <param name="HugetlbBytes">Bytes of hugetlb memory (Shared_Hugetlb + Private_Hugetlb).</param>
/// <param name="DontFork">Whether every VMA has the <c>dc</c> flag (MADV_DONTFORK).</param>
/// <param name="VmFlags">The VmFlags line of the first VMA, for diagnostics.</param>
public sealed record PageSizeObservation(
    long KernelPageSize,
    long MmuPageSize,
    long Size,
    long Rss,
    long AnonHugePages,
    long ShmemPmdMapped,
    long FilePmdMapped,
    long HugetlbBytes,
    bool DontFork,
    string VmFlags)
{
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
