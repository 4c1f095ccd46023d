namespace DirectPmem.Mapping;

/// <summary>What a mapping is made from; it decides how data is made durable.</summary>
public enum MappingBacking
{
    /// <summary>Shared anonymous memory (MAP_SHARED | MAP_ANONYMOUS): volatile.</summary>
    Anonymous,

    /// <summary>A memfd or a file on tmpfs: shared memory, volatile.</summary>
    SharedMemory,

    /// <summary>Hugetlb pages (MAP_HUGETLB, a hugetlb memfd or a file on hugetlbfs): volatile, really faulted in huge pages.</summary>
    Hugetlb,

    /// <summary>An ordinary file behind the page cache: durable after msync of the touched pages.</summary>
    PageCacheFile,

    /// <summary>A file on a DAX file system mapped with MAP_SYNC: durable after cache flush and fence.</summary>
    FsDaxFile,

    /// <summary>A device-DAX character device (<c>/dev/daxX.Y</c>): durable after cache flush and fence.</summary>
    DeviceDax,
}
