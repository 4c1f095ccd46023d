using System.Globalization;
using System.Runtime.CompilerServices;
using DirectPmem.Mapping;

namespace DirectPmem.Benchmarks.Mapping;

/// <summary>
/// The cost of the poison-safe read (issue 19): <see cref="DaxMapping.ReadSafe"/> against the plain
/// copy a caller would write (<c>GetReadOnlySpan(offset, n).CopyTo(destination)</c>) on hot data, at
/// 64 B, 4 KiB and 1 MiB, in ONE process with interleaved rounds (the order of the contenders is
/// reversed every other round), timed with the thread's CPU time (CLOCK_THREAD_CPUTIME_ID, as
/// <see cref="Floor"/>: on a shared machine the time other processes had the CPU is not counted). Also
/// <see cref="DaxMapping.DangerousReadSafe"/> into the same buffer pinned once around the loop (what
/// the per-call pin of <see cref="DaxMapping.ReadSafe"/> costs), and the safe routine's two paths on
/// their own (the vector loop and <c>rep movsb</c>), which is how the threshold between them was chosen.
/// </summary>
/// <remarks><c>dotnet DirectPmem.Benchmarks.dll --safe-read [ROUNDS (41)] [MS_PER_ROUND (20)] [SIZES, comma-separated bytes (64,4096,1048576)]</c></remarks>
internal static unsafe class SafeReadCost
{
    private static readonly nint s_routine = SafeCopy.RoutineAddress(DirectPmem.Persistence.CpuFeatures.Current.Avx2);

    internal static int Run(string[] args)
    {
        int rounds = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 41;
        double roundMilliseconds = args.Length > 2 ? double.Parse(args[2], CultureInfo.InvariantCulture) : 20;
        if (!DaxMapping.IsReadSafeSupported)
        {
            Console.Error.WriteLine($"the safe copy is unavailable: {SafeCopy.Failure}");
            return 1;
        }
        using PmemFile file = PmemFile.CreateMemory("safe-read-bench", 4L << 20);
        using DaxMapping map = file.Map();
        map.GetSpan(0, 4 << 20).Fill(0x5A);

        // plain, ReadSafe, the vector loop alone, rep movsb alone, DangerousReadSafe
        const int Contenders = 5;
        Console.WriteLine($"{rounds} rounds of about {roundMilliseconds} ms per contender (the plain copy's time sets the count), order reversed every other round, thread CPU time; "
            + $"{Environment.ProcessorCount} CPUs; load average {File.ReadAllText("/proc/loadavg").Trim()}; ReadSafe threshold for rep movsb {SafeCopy.DefaultRepThreshold} B");
        Console.WriteLine("| size | plain ns/op | ReadSafe ns/op | ReadSafe / plain, median [q1, q3] | DangerousReadSafe ns/op | DangerousReadSafe / plain, median [q1, q3] | loop ns/op | rep movsb ns/op | rep movsb / loop, median [q1, q3] |");
        Console.WriteLine("|---:|---:|---:|---|---:|---|---:|---:|---|");
        int[] sizes = args.Length > 3 ? args[3].Split(',').Select(t => int.Parse(t, CultureInfo.InvariantCulture)).ToArray() : [64, 4096, 1 << 20];
        foreach (int size in sizes)
        {
            byte[] destination = new byte[size];
            long ops = 1000;
            var times = Enumerable.Range(0, Contenders).Select(_ => new List<double>()).ToArray();
            // Warm up to tier 1 (as Floor does): short calls, each a tier-0 or OSR call at first,
            // with pauses for the background compiler; so the rounds time the code a user's
            // long-running loop gets, not OSR code.
            for (int pass = 0; pass < 8; pass++)
            {
                for (int c = 0; c < Contenders; c++)
                {
                    for (int k = 0; k < 16; k++)
                    {
                        Measure(c, map, destination, 8);
                    }
                }
                Thread.Sleep(250);
            }
            for (int warm = 0; warm < 3; warm++)
            {
                for (int c = 0; c < Contenders; c++)
                {
                    Measure(c, map, destination, ops);
                }
                ops = Math.Max(8, (long)(roundMilliseconds * 1e6 / Measure(0, map, destination, ops)));
            }
            for (int r = 0; r < rounds; r++)
            {
                for (int k = 0; k < Contenders; k++)
                {
                    int c = r % 2 == 0 ? k : Contenders - 1 - k;
                    times[c].Add(Measure(c, map, destination, ops));
                }
            }
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {Size(size)} | {Median(times[0]):F2} | {Median(times[1]):F2} | {Ratio(times[1], times[0])} | {Median(times[4]):F2} | {Ratio(times[4], times[0])} | {Median(times[2]):F2} | {Median(times[3]):F2} | {Ratio(times[3], times[2])} |"));
        }
        return 0;
    }

    // Hot data: the source cycles through 8 offsets (64 B apart for 64 B copies, 4 KiB apart otherwise);
    // each contender's loop is a method of its own (as in Floor: one loop per method, as a user
    // writes it) and all pay the same loop and nothing else.
    private static double Measure(int contender, DaxMapping map, byte[] destination, long ops)
    {
        long start = Floor.ThreadCpuNanoseconds();
        switch (contender)
        {
            case 0:
                Plain(map, destination, ops);
                break;
            case 1:
                Safe(map, destination, ops);
                break;
            case 4:
                DangerousSafe(map, destination, ops);
                break;
            default:
                Routine(map, destination, ops, contender == 2 ? nuint.MaxValue : 0);
                break;
        }
        return (double)(Floor.ThreadCpuNanoseconds() - start) / ops;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Plain(DaxMapping map, byte[] destination, long ops)
    {
        int step = Math.Min(destination.Length, 4096);
        for (long i = 0; i < ops; i++)
        {
            map.GetReadOnlySpan((i & 7) * step, destination.Length).CopyTo(destination);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Safe(DaxMapping map, byte[] destination, long ops)
    {
        int step = Math.Min(destination.Length, 4096);
        for (long i = 0; i < ops; i++)
        {
            map.ReadSafe((i & 7) * step, destination);
        }
    }

    // The destination pinned once around the loop, as a caller of DangerousReadSafe does.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void DangerousSafe(DaxMapping map, byte[] destination, long ops)
    {
        int step = Math.Min(destination.Length, 4096);
        fixed (byte* to = destination)
        {
            for (long i = 0; i < ops; i++)
            {
                map.DangerousReadSafe((i & 7) * step, to, destination.Length);
            }
        }
    }

    // The routine alone (no bounds or dispose checks), with a chosen rep movsb threshold.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Routine(DaxMapping map, byte[] destination, long ops, nuint threshold)
    {
        int step = Math.Min(destination.Length, 4096);
        byte* source = map.DangerousGetPointer();
        fixed (byte* to = destination)
        {
            for (long i = 0; i < ops; i++)
            {
                if (SafeCopy.CopyWith(s_routine, to, source + (i & 7) * step, (nuint)destination.Length, out _, threshold) != 0)
                {
                    throw new InvalidOperationException("the benchmark's source faulted");
                }
            }
        }
    }

    private static string Ratio(List<double> numerator, List<double> denominator)
    {
        double[] ratios = numerator.Zip(denominator, (a, b) => a / b).Order().ToArray();
        return string.Create(CultureInfo.InvariantCulture,
            $"{Median(ratios):F3} [{ratios[ratios.Length / 4]:F3}, {ratios[ratios.Length * 3 / 4]:F3}]");
    }

    private static double Median(IEnumerable<double> values)
    {
        double[] sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static string Size(int bytes) => bytes >= 1 << 20 ? $"{bytes >> 20} MiB" : bytes >= 1024 ? $"{bytes >> 10} KiB" : $"{bytes} B";
}
