using System.Diagnostics;

namespace DirectPmem.Tool.Bench;

/// <summary>A contender: a loop of <c>iterations</c> operations, timed as a whole.</summary>
/// <remarks><c>Timed</c>, when given, runs <c>samples.Length</c> operations and stores each one's duration in Stopwatch ticks (for latency percentiles).</remarks>
internal sealed record Contender(string Name, Action<long> Loop, Action? Before = null, Action? After = null, Action<long[]>? Timed = null);

/// <summary>
/// Runs contenders in interleaved rounds in this process: round r runs them in order when r is
/// even and in reverse when it is odd (A B C, C B A, A B C ...), so drift (frequency, other load)
/// falls on all of them alike. One untimed warm-up round first.
/// </summary>
internal static class Harness
{
    /// <summary>Nanoseconds per operation, [contender][round].</summary>
    internal static double[][] Run(IReadOnlyList<Contender> contenders, long iterations, int rounds, Action? afterEach = null)
    {
        foreach (Contender c in contenders)
        {
            Time(c, Math.Max(1, iterations / 4));
        }
        var results = new double[contenders.Count][];
        for (int i = 0; i < contenders.Count; i++)
        {
            results[i] = new double[rounds];
        }
        for (int round = 0; round < rounds; round++)
        {
            for (int k = 0; k < contenders.Count; k++)
            {
                int i = round % 2 == 0 ? k : contenders.Count - 1 - k;
                results[i][round] = Time(contenders[i], iterations) * 1e9 / iterations;
                afterEach?.Invoke();
            }
        }
        return results;
    }

    /// <summary>
    /// Single-operation latency: <paramref name="blocks"/> blocks of <paramref name="perBlock"/>
    /// operations per contender, interleaved (in order on even blocks, reversed on odd ones), each
    /// operation timed on its own; the median and 99th percentile over every sample.
    /// </summary>
    internal static LatencyResult[] Latency(IReadOnlyList<Contender> contenders, int blocks, int perBlock)
    {
        var samples = new List<double>[contenders.Count];
        var buffer = new long[perBlock];
        for (int i = 0; i < contenders.Count; i++)
        {
            samples[i] = new List<double>(blocks * perBlock);
        }
        for (int block = 0; block < blocks; block++)
        {
            for (int k = 0; k < contenders.Count; k++)
            {
                int i = block % 2 == 0 ? k : contenders.Count - 1 - k;
                Contender c = contenders[i];
                if (c.Timed is null)
                {
                    continue;
                }
                c.Before?.Invoke();
                c.Timed(buffer);
                c.After?.Invoke();
                foreach (long ticks in buffer)
                {
                    samples[i].Add(ticks * 1e9 / Stopwatch.Frequency);
                }
            }
        }
        return contenders.Select((c, i) => samples[i].Count == 0
            ? null
            : new LatencyResult(c.Name, Round(Quantile(samples[i], 0.5)), Round(Quantile(samples[i], 0.99)), samples[i].Count))
            .OfType<LatencyResult>().ToArray();
    }

    private static double Time(Contender contender, long iterations)
    {
        contender.Before?.Invoke();
        long start = Stopwatch.GetTimestamp();
        contender.Loop(iterations);
        long end = Stopwatch.GetTimestamp();
        contender.After?.Invoke();
        return (end - start) / (double)Stopwatch.Frequency;
    }

    internal static double Median(IReadOnlyList<double> values)
    {
        double[] sorted = values.ToArray();
        Array.Sort(sorted);
        int n = sorted.Length;
        return n == 0 ? double.NaN : n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }

    /// <summary>The value below which <paramref name="fraction"/> of the values lie (linear interpolation).</summary>
    internal static double Quantile(IReadOnlyList<double> values, double fraction)
    {
        double[] sorted = values.ToArray();
        Array.Sort(sorted);
        double position = fraction * (sorted.Length - 1);
        int low = (int)Math.Floor(position);
        int high = Math.Min(low + 1, sorted.Length - 1);
        return sorted[low] + (sorted[high] - sorted[low]) * (position - low);
    }

    internal static ContenderResult Summarize(string name, double[] rounds, long bytes)
    {
        double median = Median(rounds);
        double iqr = Quantile(rounds, 0.75) - Quantile(rounds, 0.25);
        return new ContenderResult(name, Round(median), Round(rounds.Min()), Round(rounds.Max()), Round(iqr / median * 100),
            Round(bytes / median * 1e9 / 1e6), rounds.Select(Round).ToArray());
    }

    internal static RatioResult Ratio(string versus, double[] directPmem, double[] other)
    {
        double[] ratios = directPmem.Zip(other, (a, b) => a / b).ToArray();
        return new RatioResult(versus, Math.Round(Median(ratios), 3), Math.Round(Quantile(ratios, 0.25), 3), Math.Round(Quantile(ratios, 0.75), 3),
            Math.Round(ratios.Min(), 3), Math.Round(ratios.Max(), 3));
    }

    private static double Round(double value) => Math.Round(value, value < 100 ? 2 : 1);
}
