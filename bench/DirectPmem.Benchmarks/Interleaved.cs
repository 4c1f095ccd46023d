using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.Loader;
using DirectPmem.Mapping;

namespace DirectPmem.Benchmarks;

/// <summary>
/// A before/after comparison in ONE process: this assembly is loaded twice, each copy in its own
/// AssemblyLoadContext bound to a different DirectPmem.dll (a baseline build and the current one),
/// and the two run the same kernels in interleaved rounds (A, B, B, A, ...), so that machine load
/// hits both alike. Prints the median ns/op of each side and the spread of the per-pair ratios.
/// </summary>
/// <remarks>
/// <c>dotnet DirectPmem.Benchmarks.dll --interleaved BASELINE_DIR [ROUNDS] [OPS_PER_ROUND] [Persist8,Write64,Span64]</c>,
/// where BASELINE_DIR holds a DirectPmem.dll built from the baseline commit.
/// </remarks>
internal static class Interleaved
{
    internal static int Run(string[] args)
    {
        string baselineDir = args[1];
        int rounds = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 40;
        int ops = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 200_000;
        string self = typeof(Interleaved).Assembly.Location;
        var sides = new[]
        {
            ("baseline", Load(self, Path.Combine(baselineDir, "DirectPmem.dll"))),
            ("current", Load(self, Path.Combine(AppContext.BaseDirectory, "DirectPmem.dll"))),
        };
        string[] kernels = args.Length > 4 ? args[4].Split(',') : ["Persist8", "Write64", "Span64"];
        Console.WriteLine($"{rounds} rounds of {ops} ops per side per kernel, order A,B,B,A...; {Environment.ProcessorCount} CPUs");
        foreach (string kernel in kernels)
        {
            var fns = sides.Select(s => (Func<int, double>)s.Item2.GetType(typeof(Kernels).FullName!)!
                .GetMethod("Create" + kernel, BindingFlags.Static | BindingFlags.NonPublic)!.Invoke(null, null)!).ToArray();
            foreach (var fn in fns)
            {
                fn(ops); // warm up and tier up
                fn(ops);
            }
            var a = new List<double>();
            var b = new List<double>();
            for (int r = 0; r < rounds; r++)
            {
                if (r % 2 == 0)
                {
                    a.Add(fns[0](ops));
                    b.Add(fns[1](ops));
                }
                else
                {
                    b.Add(fns[1](ops));
                    a.Add(fns[0](ops));
                }
            }
            double[] ratios = a.Zip(b, (x, y) => y / x).Order().ToArray();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{kernel,-9} baseline median {Median(a),8:F2} ns/op (min {a.Min():F2})  current median {Median(b),8:F2} ns/op (min {b.Min():F2})  " +
                $"ratio current/baseline median {Median(ratios):F3} [p10 {ratios[ratios.Length / 10]:F3}, p90 {ratios[ratios.Length * 9 / 10]:F3}]"));
        }
        return 0;
    }

    private static double Median(IEnumerable<double> values)
    {
        double[] sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static Assembly Load(string self, string directPmem)
    {
        var context = new SideContext(directPmem);
        return context.LoadFromAssemblyPath(self);
    }

    private sealed class SideContext(string directPmem) : AssemblyLoadContext(isCollectible: false)
    {
        protected override Assembly? Load(AssemblyName name)
            => name.Name == "DirectPmem" ? LoadFromAssemblyPath(directPmem) : null;
    }
}

/// <summary>The measured kernels; each returns a function that runs N operations and gives ns/op.</summary>
internal static unsafe class Kernels
{
    private static DaxMapping NewMapping()
    {
        // The PersistBenchmarks setup: a 64 MiB memfd forced to cache-line granularity (CLWB + SFENCE).
        PmemFile file = PmemFile.CreateMemory("interleaved", 64L << 20);
        DaxMapping map = file.Map(new DaxMappingOptions { ForceCacheLineGranularity = true });
        map.GetSpan(0, 1 << 20).Clear();
        return map;
    }

    private static Func<int, double> CreatePersist8()
    {
        DaxMapping map = NewMapping();
        return n =>
        {
            long start = Stopwatch.GetTimestamp();
            for (int i = 0; i < n; i++)
            {
                map.GetRef<long>(4096) = i;
                map.Persist(4096, 8);
            }
            return Stopwatch.GetElapsedTime(start).TotalNanoseconds / n;
        };
    }

    private static Func<int, double> CreateWrite64()
    {
        DaxMapping map = NewMapping();
        byte[] source = new byte[64];
        return n =>
        {
            long start = Stopwatch.GetTimestamp();
            for (int i = 0; i < n; i++)
            {
                map.Write(source, 8192);
            }
            return Stopwatch.GetElapsedTime(start).TotalNanoseconds / n;
        };
    }

    private static Func<int, double> CreateSpan64()
    {
        DaxMapping map = NewMapping();
        return n =>
        {
            long start = Stopwatch.GetTimestamp();
            for (int i = 0; i < n; i++)
            {
                map.GetSpan(8192 + ((i & 63) << 6), 64)[0] = (byte)i;
            }
            return Stopwatch.GetElapsedTime(start).TotalNanoseconds / n;
        };
    }
}
