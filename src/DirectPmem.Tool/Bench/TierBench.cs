using System.Diagnostics;
using System.Globalization;
using System.Numerics;
using System.Runtime.InteropServices;
using DirectPmem.Driver;
using DirectPmem.Mapping;
using DirectPmem.Placement;

namespace DirectPmem.Tool.Bench;

/// <summary>One memory node measured from one CPU node, beside what HMAT advertises for the pair.</summary>
internal sealed record TierMeasurement(
    int FromNode, int ToNode, long WorkingSetBytes, double LatencyNs, double ReadMBps, double WriteMBps,
    uint? HmatReadLatencyNs, uint? HmatReadMBps, uint? HmatWriteMBps, string? HmatAccessClass, IReadOnlyList<string> Disagreements);

/// <summary>
/// One row of <c>dpmem bench --tiers</c>, as the table prints it and <c>--json</c> writes it: measured
/// latency and bandwidth from a CPU node to a memory node beside HMAT's figures (null where HMAT has
/// none, left out of the JSON), and the check (<c>no HMAT</c>, <c>within 2x</c> or <c>DISAGREES: ...</c>).
/// </summary>
internal sealed record TierBenchRow(
    string From, string To, double LatencyNs, uint? HmatLatencyNs, double ReadMBps, uint? HmatReadMBps, double WriteMBps, uint? HmatWriteMBps,
    string? HmatClass, string Check, IReadOnlyList<string> Disagreements);

/// <summary><c>dpmem bench --tiers --json</c>: the machine, the run's parameters and the rows of the table.</summary>
internal sealed record TierBenchReport(MachineReport Machine, long WorkingSetBytes, long DependentLoads, int Passes, bool Quick, IReadOnlyList<TierBenchRow> Rows);

/// <summary>
/// <c>dpmem bench --tiers</c>: for each CPU node (the thread pinned to its CPUs) and each node with
/// memory (a mapping bound there with <see cref="NodeMemory"/>, placement checked): load latency by a
/// dependent pointer chase over a working set larger than the last-level cache, and read and write
/// bandwidth over it. Each figure stands beside HMAT's; a disagreement of more than 2x is flagged.
/// </summary>
internal static class TierBench
{
    private const int Line = 64;

    // Affinity masks of up to 1024 CPUs (glibc's cpu_set_t).
    private const int MaskWords = 1024 / 64;

    internal static unsafe IReadOnlyList<TierMeasurement> Run(string sysfsRoot, long workingSet, long chaseSteps, int passes, Action<string> progress)
    {
        IReadOnlyList<MemoryNode> nodes = new DaxBus(sysfsRoot).GetNodes();
        var cpuNodes = nodes.Where(n => n.HasCpu == true).ToList();
        var memoryNodes = nodes.Where(n => n.HasMemory != false).ToList();
        var results = new List<TierMeasurement>();
        ulong* saved = stackalloc ulong[MaskWords];
        bool restore = LibC.SchedGetAffinity(0, MaskWords * 8, saved) == 0;
        try
        {
            foreach (MemoryNode from in cpuNodes)
            {
                // Pinned to the node's CPUs when sysfs lists them and the kernel takes the mask; otherwise measured from wherever it runs.
                if (CpuMask(sysfsRoot, from.Id) is { } mask)
                {
                    fixed (ulong* m = mask)
                    {
                        _ = LibC.SchedSetAffinity(0, MaskWords * 8, m);
                    }
                }
                foreach (MemoryNode to in memoryNodes)
                {
                    progress(string.Create(CultureInfo.InvariantCulture, $"node{from.Id} -> node{to.Id}"));
                    results.Add(Measure(from.Id, to, workingSet, chaseSteps, passes));
                }
            }
        }
        finally
        {
            if (restore)
            {
                _ = LibC.SchedSetAffinity(0, MaskWords * 8, saved);
            }
        }
        return results;
    }

    private static unsafe TierMeasurement Measure(int from, MemoryNode to, long workingSet, long chaseSteps, int passes)
    {
        using DaxMapping mapping = NodeMemory.Map([to.Id], workingSet, NodePolicy.Bind, null);
        byte* p = mapping.DangerousGetPointer();
        long lines = workingSet / Line;

        // A random cycle through every cache line (Sattolo's shuffle): each load depends on the one before.
        var order = new long[lines];
        for (long i = 0; i < lines; i++)
        {
            order[i] = i;
        }
        var random = new Random(20);
        for (long i = lines - 1; i > 0; i--)
        {
            long j = random.NextInt64(i);
            (order[i], order[j]) = (order[j], order[i]);
        }
        for (long i = 0; i < lines; i++)
        {
            *(nint*)(p + order[i] * Line) = (nint)(p + order[(i + 1) % lines] * Line);
        }
        nint cursor = (nint)p;
        cursor = Chase(cursor, Math.Min(lines, chaseSteps)); // warm the TLB and page tables
        double best = double.MaxValue;
        for (int pass = 0; pass < passes; pass++)
        {
            long t0 = Stopwatch.GetTimestamp();
            cursor = Chase(cursor, chaseSteps);
            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalNanoseconds / chaseSteps);
        }
        GC.KeepAlive(cursor);

        double read = 0, write = 0;
        for (int pass = 0; pass < passes; pass++)
        {
            long t0 = Stopwatch.GetTimestamp();
            ulong sum = Sum(p, workingSet);
            double seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            GC.KeepAlive(sum);
            read = Math.Max(read, workingSet / seconds / 1e6);
            t0 = Stopwatch.GetTimestamp();
            new Span<byte>(p, (int)Math.Min(workingSet, int.MaxValue)).Fill((byte)pass);
            write = Math.Max(write, Math.Min(workingSet, int.MaxValue) / Stopwatch.GetElapsedTime(t0).TotalSeconds / 1e6);
        }

        HmatPerformance? hmat = to.Access1 is { } a1 && a1.Initiators.Contains(from) ? a1
            : to.Access0 is { } a0 && a0.Initiators.Contains(from) ? a0 : null;
        var disagreements = new List<string>();
        Check(disagreements, "latency", best, hmat?.ReadLatencyNanoseconds);
        Check(disagreements, "read bandwidth", read, hmat?.ReadBandwidthMBps);
        Check(disagreements, "write bandwidth", write, hmat?.WriteBandwidthMBps);
        return new TierMeasurement(from, to.Id, workingSet, best, read, write, hmat?.ReadLatencyNanoseconds, hmat?.ReadBandwidthMBps, hmat?.WriteBandwidthMBps,
            hmat is null ? null : string.Create(CultureInfo.InvariantCulture, $"access{hmat.AccessClass}"), disagreements.AsReadOnly());
    }

    private static void Check(List<string> into, string what, double measured, uint? advertised)
    {
        if (advertised is uint a && a > 0 && measured > 0 && (measured / a > 2 || a / measured > 2))
        {
            into.Add(string.Create(CultureInfo.InvariantCulture, $"{what} {measured / a:0.##}x HMAT"));
        }
    }

    private static unsafe nint Chase(nint cursor, long steps)
    {
        for (long i = 0; i < steps; i++)
        {
            cursor = *(nint*)cursor;
        }
        return cursor;
    }

    private static unsafe ulong Sum(byte* p, long length)
    {
        var acc = Vector<ulong>.Zero;
        long count = length / Vector<byte>.Count;
        for (long i = 0; i < count; i++)
        {
            acc += *(Vector<ulong>*)(p + i * Vector<byte>.Count);
        }
        return Vector.Sum(acc);
    }

    // The node's CPUs (cpulist) as an affinity mask; null when not exposed, empty or beyond the mask's CPUs.
    private static ulong[]? CpuMask(string sysfsRoot, int node)
    {
        string path = Path.Join(sysfsRoot, "devices", "system", "node", string.Create(CultureInfo.InvariantCulture, $"node{node}"), "cpulist");
        if (!File.Exists(path))
        {
            return null;
        }
        var mask = new ulong[MaskWords];
        bool any = false;
        foreach (string part in File.ReadAllText(path).Trim().Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] ends = part.Split('-');
            int first = int.Parse(ends[0], CultureInfo.InvariantCulture);
            int last = int.Parse(ends[^1], CultureInfo.InvariantCulture);
            if (last >= MaskWords * 64)
            {
                return null;
            }
            for (int cpu = first; cpu <= last; cpu++)
            {
                mask[cpu / 64] |= 1UL << (cpu % 64);
                any = true;
            }
        }
        return any ? mask : null;
    }
}
