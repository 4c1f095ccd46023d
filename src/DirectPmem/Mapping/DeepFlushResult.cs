namespace DirectPmem.Mapping;

/// <summary>What <see cref="DaxMapping.DeepFlush"/> did after persisting the range.</summary>
public enum DeepFlushOutcome
{
    /// <summary>
    /// No NVDIMM region is behind the mapping (anonymous memory, tmpfs, hugetlb, a memfd, a file on
    /// a disk, CXL or soft-reserved memory, the crash simulator): the range was persisted only.
    /// </summary>
    NoRegion,

    /// <summary>
    /// The region has no <c>deep_flush</c> attribute (the kernel hides it when the region's flush
    /// mechanism is unknown): the range was persisted only.
    /// </summary>
    AttributeAbsent,

    /// <summary>
    /// The region's <c>deep_flush</c> is read-only: the platform has no flush hints (the kernel then
    /// shows it read-only, reading <c>0</c>, and the persistence domain needs nothing more than the
    /// cache flush), or this process may not write it. The range was persisted only.
    /// </summary>
    AttributeReadOnly,

    /// <summary><c>1</c> was written to the region's <c>deep_flush</c> after the range was persisted: the write-pending queues were flushed.</summary>
    RegionFlushed,
}

/// <summary>
/// The result of <see cref="DaxMapping.DeepFlush"/>: what was done beyond persisting the range, and
/// which NVDIMM region it concerned. The same object for every call on a mapping (the region is
/// resolved once, when the mapping is made), so a deep flush allocates nothing.
/// </summary>
public sealed class DeepFlushResult
{
    internal static DeepFlushResult NoRegion { get; } = new(DeepFlushOutcome.NoRegion, null, null, null);

    internal DeepFlushResult(DeepFlushOutcome outcome, string? region, string? regionPath, string? attributePath)
    {
        Outcome = outcome;
        Region = region;
        RegionPath = regionPath;
        AttributePath = attributePath;
    }

    /// <summary>What was done beyond persisting the range.</summary>
    public DeepFlushOutcome Outcome { get; }

    /// <summary>Whether the region's write-pending queues were flushed (<see cref="DeepFlushOutcome.RegionFlushed"/>).</summary>
    public bool QueuesFlushed => Outcome == DeepFlushOutcome.RegionFlushed;

    /// <summary>The NVDIMM region behind the mapping (<c>region0</c>), or null when there is none.</summary>
    public string? Region { get; }

    /// <summary>The region's directory in sysfs (under <c>devices/</c>), or null when there is none.</summary>
    public string? RegionPath { get; }

    /// <summary>The region's <c>deep_flush</c> attribute, or null when there is no region or the kernel shows none.</summary>
    public string? AttributePath { get; }

    /// <inheritdoc/>
    public override string ToString() => Outcome switch
    {
        DeepFlushOutcome.NoRegion => "persisted; no NVDIMM region behind the mapping",
        DeepFlushOutcome.AttributeAbsent => $"persisted; {Region} has no deep_flush attribute",
        DeepFlushOutcome.AttributeReadOnly => $"persisted; {Region}'s deep_flush ({AttributePath}) is read-only, not written",
        _ => $"persisted; {Region}'s write-pending queues flushed through {AttributePath}",
    };
}
