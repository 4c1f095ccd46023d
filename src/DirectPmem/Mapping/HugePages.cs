namespace DirectPmem.Mapping;

/// <summary>How anonymous memory and memfds ask the kernel for huge pages.</summary>
public enum HugePages
{
    /// <summary>Base pages only (4 KiB).</summary>
    None,

    /// <summary>
    /// Transparent huge pages through MADV_HUGEPAGE: best effort, the kernel may back any part with
    /// 4 KiB pages (and does for shared memory when <c>shmem_enabled</c> is <c>never</c>).
    /// </summary>
    Transparent,

    /// <summary>Reserved hugetlb pages (MAP_HUGETLB, MFD_HUGETLB): guaranteed huge, fails when none are reserved.</summary>
    Hugetlb,
}
