using DirectPmem.Mapping;

namespace DirectPmem.Storage;

/// <summary>
/// The seam for PMDK's <c>pmem2_deep_flush</c>: persist a range and then flush the memory
/// controller's write-pending queues by writing the region's <c>deep_flush</c> sysfs attribute.
/// The core owns deep flush (a <c>DaxMapping.DeepFlush(offset, length)</c> is planned there);
/// until it exists this persists the range only, which is what deep flush reduces to on
/// platforms whose persistence domain already includes the memory controller (ADR).
/// </summary>
internal static class DeepFlushSeam
{
    public static void Flush(DaxMapping mapping, long offset, long length) => mapping.Persist(offset, length);
}
