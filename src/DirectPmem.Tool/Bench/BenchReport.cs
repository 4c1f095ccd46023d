namespace DirectPmem.Tool.Bench;

/// <summary>What <c>dpmem bench --json</c> prints.</summary>
internal sealed record BenchReport(
    MachineReport Machine,
    BenchTargetReport Target,
    string Mode,
    int Rounds,
    string Order,
    string? LibPmem,
    bool CountersSupported,
    string? LibPmemLog,
    bool StorageCountersSupported,
    IReadOnlyList<BenchResult> Results,
    IReadOnlyList<string> Notes);

/// <summary>Where the benchmark wrote.</summary>
internal sealed record BenchTargetReport(string Kind, string Path, long MappedBytes, string Granularity, bool ForcedCacheLine, long ColdRegionBytes, bool ColdRegionExceedsLlc, string Description);

/// <summary>One operation at one size and destination, every contender measured in the same rounds.</summary>
internal sealed record BenchResult(string Operation, long Bytes, string Destination, long IterationsPerRound, IReadOnlyList<ContenderResult> Contenders, IReadOnlyList<RatioResult> Ratios,
    IReadOnlyList<LatencyResult>? Latency = null);

/// <summary>The latency of single operations (each timed on its own, in interleaved blocks): median and 99th percentile.</summary>
internal sealed record LatencyResult(string Name, double P50Ns, double P99Ns, long Samples);

/// <summary>A contender's time per operation over the rounds: median, fastest and slowest round, and spread (interquartile range / median, in percent).</summary>
internal sealed record ContenderResult(string Name, double MedianNs, double MinNs, double MaxNs, double SpreadPercent, double MedianMBps, IReadOnlyList<double> RoundsNs)
{
    /// <summary>Operations per second at the median time.</summary>
    public double MedianOpsPerSecond => MedianNs > 0 ? Math.Round(1e9 / MedianNs) : 0;
}

/// <summary>
/// DirectPmem's time divided by another contender's, per round (paired: the same round): the
/// median, the quartiles and the lowest and highest round. Below 1 DirectPmem was faster.
/// </summary>
internal sealed record RatioResult(string Versus, double Median, double P25, double P75, double Min, double Max);
