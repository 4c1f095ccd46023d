namespace DirectPmem.Persistence;

/// <summary>
/// How a copy, move or fill into persistent memory is done, with the meaning of PMDK's
/// <c>PMEM_F_MEM_*</c> flags. Without flags the operation is durable when it returns.
/// </summary>
[Flags]
public enum PmemCopyOptions
{
    /// <summary>Flush and drain: the data is durable when the call returns.</summary>
    None = 0,

    /// <summary>Skip the final fence (PMEM_F_MEM_NODRAIN): the data is durable after a later <c>Drain</c>.</summary>
    NoDrain = 1 << 0,

    /// <summary>Use non-temporal stores whatever the length (PMEM_F_MEM_NONTEMPORAL).</summary>
    NonTemporal = 1 << 1,

    /// <summary>Use ordinary (temporal) stores and flush, whatever the length (PMEM_F_MEM_TEMPORAL).</summary>
    Temporal = 1 << 2,

    /// <summary>
    /// Do not flush: temporal stores, no flush (PMEM_F_MEM_NOFLUSH); the caller flushes the range
    /// later. A drain is still issued unless <see cref="NoDrain"/> is also given.
    /// </summary>
    NoFlush = 1 << 3,
}
