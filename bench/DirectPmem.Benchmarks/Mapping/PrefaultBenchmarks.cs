using System.Globalization;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using DirectPmem.Geometry;
using DirectPmem.Benchmarks.Interop;
using DirectPmem.Mapping;

namespace DirectPmem.Benchmarks.Mapping;

/// <summary>
/// Map 1 GiB of shared memory and prefault it (MADV_POPULATE_WRITE), with 4 KiB pages and with
/// 2 MiB hugetlb pages, then unmap. The "Faults/op" column is the minor page faults the kernel
/// counted per operation (getrusage), measured in the benchmark process.
/// </summary>
/// <remarks>The 2 MiB case needs 512 free hugetlb pages: as root the setup adds 512 to nr_hugepages and the cleanup takes away exactly what was added.</remarks>
[MemoryDiagnoser]
[Config(typeof(FaultsConfig))]
public class PrefaultBenchmarks
{
    private const long Size = 1L << 30;
    private const string NrHugepages = "/proc/sys/vm/nr_hugepages";
    private long _addedHugepages;
    private long _faults;
    private long _operations;

    // Adds 512 pages to whatever is reserved (other users' reservations stay theirs) and, at the
    // end, takes away exactly what the kernel really added (it may grant fewer than asked).
    [GlobalSetup(Target = nameof(MapAndPrefault1GiBWith2MiBPages))]
    public void SetupHugetlb()
    {
        long need = Size / (long)PageSize.Pmd;
        long before = ReadHugepages();
        File.WriteAllText(NrHugepages, (before + need).ToString(CultureInfo.InvariantCulture));
        _addedHugepages = ReadHugepages() - before;
        if (_addedHugepages < need)
        {
            Console.WriteLine($"// nr_hugepages: asked for {need} more, the kernel added {_addedHugepages}; the 2 MiB case may be refused.");
        }
    }

    [GlobalCleanup(Target = nameof(MapAndPrefault1GiBWith4KiBPages))]
    public void Cleanup4KiB() => FaultsColumn.Record(nameof(MapAndPrefault1GiBWith4KiBPages), _operations == 0 ? 0 : _faults / _operations);

    [GlobalCleanup(Target = nameof(MapAndPrefault1GiBWith2MiBPages))]
    public void CleanupHugetlb()
    {
        if (_addedHugepages > 0)
        {
            File.WriteAllText(NrHugepages, Math.Max(0, ReadHugepages() - _addedHugepages).ToString(CultureInfo.InvariantCulture));
            _addedHugepages = 0;
        }
        FaultsColumn.Record(nameof(MapAndPrefault1GiBWith2MiBPages), _operations == 0 ? 0 : _faults / _operations);
    }

    private static long ReadHugepages() => long.Parse(File.ReadAllText(NrHugepages).Trim(), CultureInfo.InvariantCulture);

    [Benchmark(Baseline = true)]
    public long MapAndPrefault1GiBWith4KiBPages() => MapAndPrefault(PageSize.Pte);

    [Benchmark]
    public long MapAndPrefault1GiBWith2MiBPages() => MapAndPrefault(PageSize.Pmd);

    private unsafe long MapAndPrefault(PageSize pageSize)
    {
        RUsageNative.RUsage before, after;
        RUsageNative.GetRUsage(RUsageNative.RUSAGE_SELF, &before);
        var options = new DaxMappingOptions
        {
            PageSize = pageSize,
            HugePages = pageSize == PageSize.Pte ? HugePages.None : HugePages.Hugetlb,
            RequirePageSize = pageSize != PageSize.Pte,
            Populate = true,
        };
        long length;
        using (DaxMapping map = DaxMapping.CreateAnonymous(Size, options))
        {
            length = map.Length;
        }
        RUsageNative.GetRUsage(RUsageNative.RUSAGE_SELF, &after);
        _faults += after.ru_minflt - before.ru_minflt;
        _operations++;
        return length;
    }

    private sealed class FaultsConfig : ManualConfig
    {
        public FaultsConfig() => AddColumn(new FaultsColumn());
    }

    /// <summary>Shows the per-operation fault count that the benchmark process wrote next to its results.</summary>
    private sealed class FaultsColumn : IColumn
    {
        private static string FileFor(string method) => Path.Combine(Path.GetTempPath(), $"directpmem-bench-faults-{method}.txt");

        internal static void Record(string method, long faultsPerOperation)
            => File.WriteAllText(FileFor(method), faultsPerOperation.ToString(CultureInfo.InvariantCulture));

        public string Id => "MinorFaults";
        public string ColumnName => "Faults/op";
        public bool AlwaysShow => true;
        public ColumnCategory Category => ColumnCategory.Custom;
        public int PriorityInCategory => 0;
        public bool IsNumeric => true;
        public UnitType UnitType => UnitType.Dimensionless;
        public string Legend => "Minor page faults per operation (getrusage ru_minflt), counted in the benchmark process";
        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
        public bool IsAvailable(Summary summary) => true;

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase)
        {
            string file = FileFor(benchmarkCase.Descriptor.WorkloadMethod.Name);
            return File.Exists(file) ? File.ReadAllText(file) : "n/a";
        }

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) => GetValue(summary, benchmarkCase);
    }
}
