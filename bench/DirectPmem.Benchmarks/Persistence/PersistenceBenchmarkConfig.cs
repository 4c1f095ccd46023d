using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using DirectPmem.Mapping;

namespace DirectPmem.Benchmarks.Persistence;

/// <summary>
/// Three launches (separate processes) of 20 iterations each, the baseline in the same run,
/// ratios, min/max, and allocations. Headline ratios come from one process with interleaved rounds
/// (dpmem bench); these runs are the detail, and the spread between launches shows in Min/Max.
/// </summary>
internal sealed class PersistenceBenchmarkConfig : ManualConfig
{
    public PersistenceBenchmarkConfig()
    {
        AddJob(Job.Default.WithLaunchCount(3).WithWarmupCount(3).WithIterationCount(20).WithId("3x20"));
        AddDiagnoser(MemoryDiagnoser.Default);
        AddColumn(StatisticColumn.Median, StatisticColumn.Min, StatisticColumn.Max, BaselineRatioColumn.RatioMean);
        HideColumns(Column.Job, Column.Error, Column.RatioSD);
    }
}

/// <summary>The mapping every persistence benchmark uses: a memfd in forced cache-line mode (as PMEM_IS_PMEM_FORCE=1).</summary>
internal sealed class ForcedMapping : IDisposable
{
    internal const long Size = 64L << 20;

    private readonly PmemFile _memory;

    internal ForcedMapping(long size = Size)
    {
        _memory = PmemFile.CreateMemory("directpmem-bench", size);
        Mapping = _memory.Map(new DaxMappingOptions { ForceCacheLineGranularity = true, Populate = true });
        if (Mapping.Granularity != DirectPmem.Persistence.PersistGranularity.CacheLine)
        {
            throw new InvalidOperationException($"the benchmark mapping has {Mapping.Granularity} granularity, not CacheLine: {DirectPmem.Persistence.Pmem.FlushInstructionReason}");
        }
    }

    internal DaxMapping Mapping { get; }

    public void Dispose()
    {
        Mapping.Dispose();
        _memory.Dispose();
    }
}
