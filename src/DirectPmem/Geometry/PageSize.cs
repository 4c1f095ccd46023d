namespace DirectPmem.Geometry;

/// <summary>
/// The fault granularity of a device or mapping, fixed when it is configured, as the x86-64
/// page-table level that maps it. Offsets, lengths and the virtual start address of every
/// mapping are multiples of it. The value of each member is its size in bytes.
/// </summary>
public enum PageSize : long
{
    /// <summary>4 KiB: a page-table entry (pte).</summary>
    Pte = 4096,

    /// <summary>2 MiB: a page-middle-directory entry (pmd), a huge page.</summary>
    Pmd = 2 * 1024 * 1024,

    /// <summary>1 GiB: a page-upper-directory entry (pud), a gigantic page.</summary>
    Pud = 1024 * 1024 * 1024,
}
