using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Filters;
using BenchmarkDotNet.Running;
using DirectPmem.Mapping;

namespace DirectPmem.Storage.Benchmarks;

/// <summary>
/// BenchmarkDotNet detail of one durable append, 1 thread: <see cref="PmemLog.Append(ReadOnlySpan{byte})"/>
/// against PMDK's <c>pmemlog_append</c> (the baseline), 64 B and 1 KiB records, both on files in
/// /dev/shm in forced cache-line mode (ForceCacheLineGranularity; PMEM_IS_PMEM_FORCE=1). The
/// headline ratio comes from the interleaved program (no arguments); this is the per-operation detail.
/// When a log is full it is emptied (DirectPmem: truncate to the tail, one 8-byte publish;
/// pmemlog: pmemlog_rewind), once per hundreds of thousands of appends.
/// </summary>
/// <remarks>Run from bench/DirectPmem.Storage.Benchmarks: <c>dotnet run -c Release -- bdn --filter '*'</c>.</remarks>
[Config(typeof(LogAppendConfig))]
[RequiresLibPmemLogForBaseline]
public unsafe class LogAppendBenchmarks : IDisposable
{
    private const long PoolSize = 512L << 20;

    private string _ourPath = "";
    private string _pmdkPath = "";
    private PmemPool? _pool;
    private PmemLog _log = null!;
    private byte[] _payload = [];
    private byte* _payloadPointer;
    private int _frame;
    private nint _plp;
    private long _pmdkCapacity;
    private long _pmdkWritten;

    /// <summary>The record's payload length.</summary>
    [Params(64, 1024)]
    public int RecordSize { get; set; }

    /// <summary>Creates both logs.</summary>
    [GlobalSetup]
    public void Setup()
    {
        // libpmem reads PMEM_IS_PMEM_FORCE at its first pmem_is_pmem (in pmemlog_create): set it natively before.
        LibC.SetEnv("PMEM_IS_PMEM_FORCE", "1", 1);
        string dir = Environment.GetEnvironmentVariable("DIRECTPMEM_BENCH_DIR") is { Length: > 0 } d ? d : "/dev/shm";
        _ourPath = Path.Combine(dir, $"dpm-bdn-{Environment.ProcessId}.pool");
        _pmdkPath = Path.Combine(dir, $"pmemlog-bdn-{Environment.ProcessId}.pool");
        File.Delete(_ourPath);
        File.Delete(_pmdkPath);
        _pool = PmemPool.CreateFile(_ourPath, PoolSize, "bench", new PoolCreateOptions { AllowVolatile = true } /* a benchmark runs on /dev/shm too */, mappingOptions: new DaxMappingOptions { ForceCacheLineGranularity = true, Populate = true });
        _log = PmemLog.Create(_pool, _pool.DataOffset, _pool.DataLength / 4096 * 4096);
        _payload = GC.AllocateArray<byte>(RecordSize, pinned: true);
        new Random(42).NextBytes(_payload);
        fixed (byte* p = _payload)
        {
            _payloadPointer = p; // pinned for the process's life
        }
        _frame = PmemLog.FrameLength(RecordSize);
        if (LibPmemLog.TryLoad(out _))
        {
            _plp = LibPmemLog.Create(_pmdkPath, (nuint)PoolSize, 0x180);
            if (_plp == 0)
            {
                throw new InvalidOperationException("pmemlog_create: " + LibPmemLog.LastError());
            }
            _pmdkCapacity = (long)LibPmemLog.NByte(_plp);
        }
    }

    /// <summary>Closes and deletes both logs.</summary>
    [GlobalCleanup]
    public void Dispose()
    {
        if (_plp != 0)
        {
            LibPmemLog.Close(_plp);
            _plp = 0;
        }
        _pool?.Dispose();
        _pool = null;
        File.Delete(_ourPath);
        File.Delete(_pmdkPath);
        GC.SuppressFinalize(this);
    }

    /// <summary>PMDK's pmemlog_append: one durable append under its lock.</summary>
    /// <returns>pmemlog_append's result (0).</returns>
    [Benchmark(Baseline = true, Description = "pmemlog_append")]
    public int PmemLogAppend()
    {
        if (_pmdkWritten + RecordSize > _pmdkCapacity)
        {
            LibPmemLog.Rewind(_plp);
            _pmdkWritten = 0;
        }
        _pmdkWritten += RecordSize;
        return LibPmemLog.Append(_plp, _payloadPointer, (nuint)RecordSize);
    }

    /// <summary>DirectPmem's PmemLog.Append: one durable append (frame with length and checksum, group commit).</summary>
    /// <returns>The record's LSN.</returns>
    [Benchmark(Description = "PmemLog.Append")]
    public long DirectPmemAppend()
    {
        if (_log.FreeBytes < _frame)
        {
            _log.Truncate(_log.Tail);
        }
        return _log.Append(_payload);
    }
}

/// <summary>BenchmarkDotNet's default job (the command line may choose another, e.g. <c>--job short</c>), with ratios, min/max and allocations.</summary>
internal sealed class LogAppendConfig : ManualConfig
{
    public LogAppendConfig()
    {
        AddDiagnoser(MemoryDiagnoser.Default);
        AddColumn(StatisticColumn.Median, StatisticColumn.Min, StatisticColumn.Max, BaselineRatioColumn.RatioMean);
    }
}

/// <summary>Drops the pmemlog baseline when libpmemlog.so.1 is missing, and says so.</summary>
[AttributeUsage(AttributeTargets.Class)]
internal sealed class RequiresLibPmemLogForBaselineAttribute : FilterConfigBaseAttribute
{
    private static int s_warned;

    public RequiresLibPmemLogForBaselineAttribute()
        : base(new SimpleFilter(Keep))
    {
    }

    private static bool Keep(BenchmarkCase benchmark)
    {
        if (benchmark.Descriptor.WorkloadMethod.Name != nameof(LogAppendBenchmarks.PmemLogAppend) || LibPmemLog.TryLoad(out string why))
        {
            return true;
        }
        if (Interlocked.Exchange(ref s_warned, 1) == 0)
        {
            Console.WriteLine($"pmemlog baseline skipped: {why}");
        }
        return false;
    }
}
