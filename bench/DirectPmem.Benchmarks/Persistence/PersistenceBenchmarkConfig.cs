using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using DirectPmem.Mapping;

namespace DirectPmem.Benchmarks.Persistence;

/// <summary>
/// Short jobs with many iterations (the machine is shared and noisy), the baseline in the same
/// run, ratios, and allocations.
/// </summary>
internal sealed class PersistenceBenchmarkConfig : ManualConfig
{
    public PersistenceBenchmarkConfig()
    {
        AddJob(Job.Default.WithLaunchCount(1).WithWarmupCount(3).WithIterationCount(20).WithId("Short"));
        AddDiagnoser(MemoryDiagnoser.Default);
        AddColumn(StatisticColumn.Median, StatisticColumn.Min, BaselineRatioColumn.RatioMean);
        HideColumns(Column.Job, Column.Error, Column.RatioSD);
    }
}

/// <summary>The mapping every persistence benchmark uses: a memfd in forced cache-line mode (as PMEM_IS_PMEM_FORCE=1).</summary>
internal sealed class ForcedMapping : IDisposable
{
    internal const long Size = 64L << 20;

    private readonly PmemFile _memory;

    internal ForcedMapping()
    {
        _memory = PmemFile.CreateMemory("directpmem-bench", Size);
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
