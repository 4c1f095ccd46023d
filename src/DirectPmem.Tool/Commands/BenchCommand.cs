using System.CommandLine;
using System.Diagnostics;
using System.Diagnostics.Tracing;
using System.Globalization;
using System.Runtime.InteropServices;
using DirectPmem.Diagnostics;
using DirectPmem.Mapping;
using DirectPmem.Persistence;
using DirectPmem.Storage;
using DirectPmem.Storage.Diagnostics;
using DirectPmem.Tool.Bench;
using DirectPmem.Tool.Cli;
using Spectre.Console;

namespace DirectPmem.Tool.Commands;

/// <summary>
/// <c>dpmem bench [PATH]</c>: persist latency (8 B, 64 B) and copy-persist (64 B .. 16 MiB, to a
/// fixed and to cold destinations) with DirectPmem, side by side in this process with msync on the
/// same mapping, Buffer.MemoryCopy, and PMDK's libpmem (<c>--compare libpmem</c>), in interleaved
/// rounds; then the durable log append rate (PmemLog, 64 B and 1 KiB, 1 thread) beside PMDK's
/// pmemlog_append (<c>--compare libpmemlog</c>), with single-append latency percentiles; medians,
/// spread, and DirectPmem's time divided by each other contender's.
/// </summary>
internal static unsafe class BenchCommand
{
    private const long FixedArea = 16L << 20;
    private static readonly long[] s_persistSizes = [8, 64];
    private static readonly long[] s_copySizes = [64, 4096, 64 << 10, 1 << 20, 16 << 20];
    private static readonly int[] s_logSizes = [64, 1024];

    internal static Command Create()
    {
        var path = new Argument<string?>("path") { Description = "A device-DAX device, a (DAX) file or an emulated device to write to; none: a memfd in forced cache-line mode.", Arity = ArgumentArity.ZeroOrOne };
        var quick = new Option<bool>("--quick", "-q") { Description = "Few rounds and short loops (a smoke test, not a measurement)." };
        var json = new Option<bool>("--json", "-j") { Description = "Print the results as JSON (progress goes to stderr)." };
        var compare = new Option<string[]>("--compare") { Description = "Also run these baselines: libpmem (PMDK's libpmem.so.1), libpmemlog (PMDK's libpmemlog.so.1, beside the log append).", AllowMultipleArgumentsPerToken = true };
        compare.AcceptOnlyFromAmong("libpmem", "libpmemlog");
        var counters = new Option<bool>("--counters") { Description = "Also run DirectPmem with a counter listener attached (DirectPmem and DirectPmem.Storage), and the raw-pointer floor (Pmem.Dangerous*): the cost of the counters." };
        var rounds = new Option<int>("--rounds", "-r") { Description = "Interleaved rounds per measurement (default 41, quick 3)." };
        var overwrite = new Option<bool>("--overwrite") { Description = "Required with PATH: the benchmark writes over the start of PATH (labels and data included)." };
        var tiers = new Option<bool>("--tiers", "-T")
        {
            Description = "Instead, measure every node with memory from every CPU node: pointer-chase latency over a working set larger than the last-level cache, read and write bandwidth, beside HMAT (a disagreement over 2x is flagged); with --json, the same rows as JSON.",
        };
        Option<string> sysfs = DeviceOpener.SysfsOption();
        var command = new Command("bench", "Measure persist latency, copy-persist speed and durable log appends, side by side with msync, Buffer.MemoryCopy, libpmem and libpmemlog.")
        {
            path, quick, json, compare, counters, rounds, overwrite, tiers, sysfs,
        };
        CommandRunner.SetAction(command, parse => parse.GetValue(tiers) ? RunTiers(parse.GetValue(sysfs)!, parse.GetValue(quick), parse.GetValue(json)) : Run(new Settings(parse.GetValue(path), parse.GetValue(quick), parse.GetValue(json),
            parse.GetValue(compare)?.Contains("libpmem") == true, parse.GetValue(compare)?.Contains("libpmemlog") == true, parse.GetValue(counters), parse.GetValue(rounds), parse.GetValue(overwrite), parse.GetValue(sysfs)!)));
        return command;
    }

    private sealed record Settings(string? Path, bool Quick, bool Json, bool LibPmem, bool LibPmemLog, bool Counters, int Rounds, bool Overwrite, string Sysfs);

    private static int Run(Settings settings)
    {
        if (settings.Path is not null && !settings.Overwrite)
        {
            throw new ToolException($"dpmem bench writes over the start of '{settings.Path}' (its labels and data too): pass --overwrite to agree, or give no path to use a memfd.");
        }
        if (settings.Rounds < 0)
        {
            throw new ToolException($"--rounds {settings.Rounds} must be positive.");
        }
        var notes = new List<string>();
        string? libpmemlog = null;
        if (settings.LibPmemLog)
        {
            // Before anything loads libpmem.so.1 (libpmemlog links it): it reads this once, when it loads.
            _ = LibC.SetEnv("PMEM_IS_PMEM_FORCE", "1", 1);
            if (LibPmemLog.TryLoad())
            {
                libpmemlog = "libpmemlog: libpmemlog.so.1 (pmemlog_append), its pool a file in " + PmemlogDirectory() + " with PMEM_IS_PMEM_FORCE=1 (CLWB + SFENCE, no msync), rewound before each round";
            }
            else
            {
                notes.Add("--compare libpmemlog: libpmemlog.so.1 is not installed (bench/setup-pmdk.sh installs Debian's libpmemlog1): pmemlog_append skipped");
            }
        }
        string? libpmem = null;
        if (settings.LibPmem)
        {
            if (!LibPmem.TryLoad(out _))
            {
                throw new ToolException("--compare libpmem: libpmem.so.1 cannot be loaded; install PMDK's libpmem1 (bench/setup-pmdk.sh).");
            }
            libpmem = DescribeLibPmem();
        }
        int rounds = settings.Rounds > 0 ? settings.Rounds : settings.Quick ? 3 : 41;
        MachineReport machine = Machine.Describe();
        long llc = Machine.LastLevelCache(machine);
        // Cold destinations: a walk over a region several times the last-level cache, so that a
        // destination is evicted before the walk comes back to it.
        long cold = settings.Quick ? 64L << 20 : llc > 0 ? Math.Max(3 * llc, 64L << 20) : 1L << 30;
        cold = (cold + (2L << 20) - 1) & ~((2L << 20) - 1);
        if (llc == 0)
        {
            notes.Add("the last-level cache size is unknown (no sysfs cache entries, no CPUID leaf): cold destinations walk 1 GiB");
        }
        if (settings.Quick)
        {
            notes.Add("quick mode: a smoke test with short loops and a 64 MiB cold region, not a measurement");
        }

        using BenchTarget target = BenchTarget.Open(settings.Path, settings.Sysfs, FixedArea + cold);
        DaxMapping map = target.Map;
        target.Prefault();
        long coldRegion = map.Length - FixedArea;
        if (coldRegion < (16L << 20))
        {
            throw new ToolException($"'{target.Path}' gives {map.Length} bytes; the benchmark needs at least {2 * FixedArea} (16 MiB fixed area and a cold region).");
        }
        bool coldExceedsLlc = llc > 0 && coldRegion >= 2 * llc;
        if (llc > 0 && !coldExceedsLlc)
        {
            notes.Add($"the cold region ({Sizes.Format(coldRegion)}) is less than twice the last-level cache ({Sizes.Format(llc)}): cold results are not truly cold");
        }
        notes.Add(target.Description);
        notes.Add($"DirectPmem: {Pmem.FlushInstruction}, {Pmem.VectorBits}-bit non-temporal stores from {Pmem.NonTemporalThreshold} bytes{(Pmem.UsesNonTemporalStores ? "" : " (disabled)")}");
        if (libpmem is not null)
        {
            notes.Add(libpmem);
        }
        if (libpmemlog is not null)
        {
            notes.Add(libpmemlog);
        }
        notes.Add("log-append: PmemLog.Append (DirectPmem.Storage) of 64 B and 1 KiB records from 1 thread, durable on return; a new empty log at the start of a pool on the target before each round; latency: each append timed on its own in interleaved blocks");

        byte* source = (byte*)NativeMemory.AlignedAlloc((nuint)FixedArea, 4096);
        try
        {
            new Span<byte>(source, (int)FixedArea).Fill(0x5A);
            string? msyncProblem = ProbeMSync(map);
            if (msyncProblem is not null)
            {
                notes.Add(msyncProblem);
            }
            else if (map.Backing is MappingBacking.SharedMemory or MappingBacking.Hugetlb or MappingBacking.Anonymous)
            {
                notes.Add("msync on shared memory (memfd/tmpfs) writes nothing back: the msync column is the cost of the system call only");
            }
            using var listener = settings.Counters ? new CounterListener() : null;
            var plan = BuildPlan(map, source, settings, libpmem is not null, msyncProblem is null, listener, coldRegion);
            var results = new List<BenchResult>();
            IAnsiConsole ui = settings.Json || Console.IsOutputRedirected
                ? AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) })
                : AnsiConsole.Console;
            ui.Progress().AutoClear(true).Start(context =>
            {
                int logContenders = 1 + (libpmemlog is null ? 0 : 1) + (listener is null ? 0 : 1);
                ProgressTask task = context.AddTask("bench", maxValue: plan.Sum(p => (double)p.Contenders.Count * rounds) + (double)s_logSizes.Length * logContenders * rounds);
                foreach (Measurement m in plan)
                {
                    task.Description = $"{m.Operation} {Sizes.Format(m.Bytes)} {m.Destination}";
                    long iterations = Calibrate(m, settings.Quick);
                    double[][] times = Harness.Run(m.Contenders, iterations, rounds, () => task.Increment(1));
                    var contenders = m.Contenders.Select((c, i) => Harness.Summarize(c.Name, times[i], m.Bytes)).ToArray();
                    var ratios = m.Contenders.Skip(1).Select((c, i) => Harness.Ratio(c.Name, times[0], times[i + 1])).ToArray();
                    results.Add(new BenchResult(m.Operation, m.Bytes, m.Destination, iterations, contenders, ratios));
                }
                RunLog(map, (nint)source, settings, libpmemlog is not null, listener, rounds, results, task);
            });
            var report = new BenchReport(machine,
                new BenchTargetReport(target.Kind, target.Path, map.Length, map.Granularity.ToString(), target.ForcedCacheLine, coldRegion, coldExceedsLlc, target.Description),
                settings.Quick ? "quick" : "full", rounds, "interleaved: contenders in order on even rounds, reversed on odd rounds, after one warm-up round",
                libpmem, PmemCounters.IsSupported, libpmemlog, StorageCounters.IsSupported, results, notes);
            if (settings.Json)
            {
                JsonOutput.Write(report, ToolJsonContext.Default.BenchReport);
            }
            else
            {
                Print(report);
            }
            return 0;
        }
        finally
        {
            NativeMemory.AlignedFree(source);
        }
    }

    private static int RunTiers(string sysfsRoot, bool quick, bool json)
    {
        MachineReport machine = Machine.Describe();
        long llc = Machine.LastLevelCache(machine);
        long workingSet = Math.Max(quick ? 2 * llc : 4 * llc, quick ? 32L << 20 : 128L << 20);
        workingSet = (workingSet + (2L << 20) - 1) & ~((2L << 20) - 1);
        long steps = quick ? 200_000 : 2_000_000;
        int passes = quick ? 2 : 5;
        IReadOnlyList<TierMeasurement> results = TierBench.Run(sysfsRoot, workingSet, steps, passes, what => Console.Error.WriteLine($"dpmem bench --tiers: {what}"));
        // One set of rows for the table and for --json.
        TierBenchRow[] rows = results.Select(m => new TierBenchRow(Node(m.FromNode), Node(m.ToNode), Math.Round(m.LatencyNs, 1), m.HmatReadLatencyNs,
            Math.Round(m.ReadMBps), m.HmatReadMBps, Math.Round(m.WriteMBps), m.HmatWriteMBps, m.HmatAccessClass,
            m.HmatAccessClass is null ? "no HMAT" : m.Disagreements.Count == 0 ? "within 2x" : "DISAGREES: " + string.Join(", ", m.Disagreements), m.Disagreements)).ToArray();
        if (json)
        {
            JsonOutput.Write(new TierBenchReport(machine, workingSet, steps, passes, quick, rows), ToolJsonContext.Default.TierBenchReport);
            return 0;
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"machine: {machine.CpuModel}, {machine.LogicalCpus} CPUs, L2 {Sizes.Format(machine.L2Bytes)}, L3 {Sizes.Format(machine.L3Bytes)} ({machine.CacheSource}), kernel {machine.Kernel}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"working set {Sizes.Format(workingSet)} per node ({(llc > 0 ? $"{(double)workingSet / llc:0.#}x the last-level cache" : "last-level cache unknown")}), {steps} dependent loads and {passes} passes each, best pass{(quick ? "; quick mode: a smoke test" : "")}"));
        if (rows.Length == 0)
        {
            Console.WriteLine($"no node with CPUs and memory under {sysfsRoot}/devices/system/node");
            return 0;
        }
        var table = new Table().AddColumns("from", "to", "latency ns", "HMAT ns", "read MB/s", "HMAT read", "write MB/s", "HMAT write", "HMAT class", "check");
        foreach (TierBenchRow r in rows)
        {
            table.AddRow(r.From, r.To, r.LatencyNs.ToString("0.0", CultureInfo.InvariantCulture), Figure(r.HmatLatencyNs),
                r.ReadMBps.ToString("0", CultureInfo.InvariantCulture), Figure(r.HmatReadMBps), r.WriteMBps.ToString("0", CultureInfo.InvariantCulture), Figure(r.HmatWriteMBps),
                r.HmatClass ?? "-", r.Check);
        }
        AnsiConsole.Write(table);
        return 0;

        static string Node(int id) => string.Create(CultureInfo.InvariantCulture, $"node{id}");
        static string Figure(uint? value) => value?.ToString(CultureInfo.InvariantCulture) ?? "-";
    }

    private static string PmemlogDirectory() => Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();

    /// <summary>The current log of a log-append contender: a new one is created before each round.</summary>
    private sealed class LogBox(PmemLog log)
    {
        internal PmemLog Log { get; set; } = log;
    }

    // The log phase: a pool over the target (the persist and copy phases are done with it), one log in
    // it, and per record size: DirectPmem, pmemlog_append, DirectPmem with the counters listening.
    private static void RunLog(DaxMapping map, nint source, Settings settings, bool pmemlog, CounterListener? listener, int rounds, List<BenchResult> results, ProgressTask task)
    {
        // A benchmark measures the target it is given, the emulated default on tmpfs included: it needs no durability across reboots.
        using PmemPool pool = PmemPool.Create(map, "dpmem-bench", new PoolCreateOptions { Overwrite = true, AllowVolatile = true });
        long logLength = Math.Min(pool.DataLength / 4096 * 4096, settings.Quick ? 32L << 20 : 256L << 20);
        var box = new LogBox(PmemLog.Create(pool, pool.DataOffset, logLength));
        // Empty the log the way a user does, by truncating to its tail: the ring keeps moving (never re-created).
        void Renew() => box.Log.Truncate(box.Log.Tail);
        nint plp = 0;
        string? pmdkPath = null;
        if (pmemlog)
        {
            pmdkPath = Path.Combine(PmemlogDirectory(), $"dpmem-bench-pmemlog-{Environment.ProcessId}.pool");
            File.Delete(pmdkPath);
            plp = LibPmemLog.Create(pmdkPath, (nuint)(logLength + (2L << 20)), 0x180);
            if (plp == 0)
            {
                File.Delete(pmdkPath);
                throw new ToolException($"pmemlog_create('{pmdkPath}') failed: {LibPmemLog.LastError()}");
            }
        }
        try
        {
            foreach (int size in s_logSizes)
            {
                var record = new ReadOnlySpanHolder(source, size);
                long maxOps = box.Log.Capacity / PmemLog.FrameLength(size) - 1;
                if (plp != 0)
                {
                    maxOps = Math.Min(maxOps, (long)LibPmemLog.NByte(plp) / size - 1);
                }
                var contenders = new List<Contender>
                {
                    new("DirectPmem", count => AppendLoop(box, record, count), Renew, null, samples => TimedAppend(box, record, samples)),
                };
                if (plp != 0)
                {
                    contenders.Add(new("pmemlog_append", count => PmemlogLoop(plp, (byte*)source, size, count), () => LibPmemLog.Rewind(plp), null, samples => TimedPmemlog(plp, (byte*)source, size, samples)));
                }
                if (listener is not null)
                {
                    contenders.Add(new("DirectPmem + listener", count => AppendLoop(box, record, count), () => { Renew(); listener.Enable(); }, listener.Disable, samples => TimedAppend(box, record, samples)));
                }
                var m = new Measurement("log-append", size, "log", contenders);
                task.Description = $"log-append {Sizes.Format(size)}";
                long iterations = Math.Min(Calibrate(m, settings.Quick), maxOps);
                double[][] times = Harness.Run(contenders, iterations, rounds, () => task.Increment(1));
                LatencyResult[] latency = Harness.Latency(contenders, settings.Quick ? 2 : 6, (int)Math.Min(settings.Quick ? 2_000 : 20_000, maxOps));
                results.Add(new BenchResult(m.Operation, m.Bytes, m.Destination, iterations,
                    contenders.Select((c, i) => Harness.Summarize(c.Name, times[i], size)).ToArray(),
                    contenders.Skip(1).Select((c, i) => Harness.Ratio(c.Name, times[0], times[i + 1])).ToArray(),
                    latency));
            }
        }
        finally
        {
            if (plp != 0)
            {
                LibPmemLog.Close(plp);
                File.Delete(pmdkPath!);
            }
        }
    }

    /// <summary>A record in native memory (a span cannot be captured by a lambda).</summary>
    private readonly struct ReadOnlySpanHolder(nint pointer, int length)
    {
        internal ReadOnlySpan<byte> Span => new((void*)pointer, length);
    }

    private static void AppendLoop(LogBox box, ReadOnlySpanHolder record, long count)
    {
        PmemLog log = box.Log;
        ReadOnlySpan<byte> payload = record.Span;
        for (long i = 0; i < count; i++)
        {
            log.Append(payload);
        }
    }

    private static void TimedAppend(LogBox box, ReadOnlySpanHolder record, long[] samples)
    {
        PmemLog log = box.Log;
        ReadOnlySpan<byte> payload = record.Span;
        for (int i = 0; i < samples.Length; i++)
        {
            long start = Stopwatch.GetTimestamp();
            log.Append(payload);
            samples[i] = Stopwatch.GetTimestamp() - start;
        }
    }

    private static void PmemlogLoop(nint plp, byte* record, int size, long count)
    {
        for (long i = 0; i < count; i++)
        {
            if (LibPmemLog.Append(plp, record, (nuint)size) != 0)
            {
                throw new ToolException("pmemlog_append failed: " + LibPmemLog.LastError());
            }
        }
    }

    private static void TimedPmemlog(nint plp, byte* record, int size, long[] samples)
    {
        for (int i = 0; i < samples.Length; i++)
        {
            long start = Stopwatch.GetTimestamp();
            int result = LibPmemLog.Append(plp, record, (nuint)size);
            samples[i] = Stopwatch.GetTimestamp() - start;
            if (result != 0)
            {
                throw new ToolException("pmemlog_append failed: " + LibPmemLog.LastError());
            }
        }
    }

    private sealed record Measurement(string Operation, long Bytes, string Destination, IReadOnlyList<Contender> Contenders);

    private static List<Measurement> BuildPlan(DaxMapping map, byte* source, Settings settings, bool libpmem, bool msync, CounterListener? listener, long coldRegion)
    {
        nint baseAddress = (nint)map.DangerousGetPointer();
        nint src = (nint)source;
        var plan = new List<Measurement>();
        foreach (long size in s_persistSizes)
        {
            int n = (int)size;
            var contenders = new List<Contender>
            {
                new("DirectPmem", count => PersistLoop(map, baseAddress, n, count, Persister.DirectPmem)),
            };
            if (libpmem)
            {
                contenders.Add(new("libpmem", count => PersistLoop(map, baseAddress, n, count, Persister.LibPmem)));
            }
            if (msync)
            {
                contenders.Add(new("msync", count => PersistLoop(map, baseAddress, n, count, Persister.MSync)));
            }
            if (listener is not null)
            {
                contenders.Add(new("DirectPmem + listener", count => PersistLoop(map, baseAddress, n, count, Persister.DirectPmem), listener.Enable, listener.Disable));
                contenders.Add(new("floor (Pmem.DangerousPersist)", count => PersistLoop(map, baseAddress, n, count, Persister.Floor)));
            }
            plan.Add(new Measurement("persist", size, "fixed", contenders));
        }
        foreach (string destination in new[] { "fixed", "cold" })
        {
            foreach (long size in s_copySizes)
            {
                var walk = new Walk(destination == "cold" ? FixedArea : 0, destination == "cold" ? coldRegion : size, Math.Max(size, 4096));
                var contenders = new List<Contender>
                {
                    new("DirectPmem", count => CopyLoop(map, baseAddress, src, size, count, walk, Copier.DirectPmem)),
                };
                if (libpmem)
                {
                    contenders.Add(new("libpmem", count => CopyLoop(map, baseAddress, src, size, count, walk, Copier.LibPmem)));
                }
                if (msync)
                {
                    contenders.Add(new("memcpy + msync", count => CopyLoop(map, baseAddress, src, size, count, walk, Copier.MSync)));
                }
                contenders.Add(new("Buffer.MemoryCopy", count => CopyLoop(map, baseAddress, src, size, count, walk, Copier.MemoryCopy)));
                if (listener is not null)
                {
                    contenders.Add(new("DirectPmem + listener", count => CopyLoop(map, baseAddress, src, size, count, walk, Copier.DirectPmem), listener.Enable, listener.Disable));
                    contenders.Add(new("floor (Pmem.DangerousCopy)", count => CopyLoop(map, baseAddress, src, size, count, walk, Copier.Floor)));
                }
                plan.Add(new Measurement("copy-persist", size, destination, contenders));
            }
        }
        return plan;
    }

    // Iterations per round: the slowest contender's round takes about 5 ms (quick: 1 ms). Short
    // rounds, many of them: on a shared machine a short round more often runs undisturbed, and
    // the median ignores the disturbed ones. Each contender runs once untimed first (lazy binding,
    // first faults), then once timed.
    private static long Calibrate(Measurement m, bool quick)
    {
        long probe = m.Bytes >= (1 << 20) ? 2 : 64;
        double slowest = 0;
        foreach (Contender c in m.Contenders)
        {
            c.Before?.Invoke();
            c.Loop(probe);
            long start = Stopwatch.GetTimestamp();
            c.Loop(probe);
            slowest = Math.Max(slowest, Stopwatch.GetElapsedTime(start).TotalSeconds / probe);
            c.After?.Invoke();
        }
        double budget = quick ? 0.001 : 0.005;
        return Math.Clamp((long)(budget / Math.Max(slowest, 1e-9)), quick ? 1 : 2, quick ? 2_000 : 200_000);
    }

    private enum Persister { DirectPmem, LibPmem, MSync, Floor }

    private enum Copier { DirectPmem, LibPmem, MSync, MemoryCopy, Floor }

    /// <summary>Destinations: a fixed one, or a walk over a region much larger than the last-level cache.</summary>
    private sealed class Walk(long start, long region, long stride)
    {
        private long _next;

        internal long Next()
        {
            long slots = Math.Max(1, region / stride);
            long offset = start + _next % slots * stride;
            _next++;
            return offset;
        }
    }

    // The same stores for every contender: 8-byte words over `size` bytes of one of 64 lines of the first page.
    private static void PersistLoop(DaxMapping map, nint baseAddress, int size, long count, Persister how)
    {
        byte* b = (byte*)baseAddress;
        for (long i = 0; i < count; i++)
        {
            long offset = (i & 63) << 6;
            long* p = (long*)(b + offset);
            for (int w = 0; w < size / 8; w++)
            {
                p[w] = i;
            }
            switch (how)
            {
                case Persister.DirectPmem:
                    map.Persist(offset, size);
                    break;
                case Persister.LibPmem:
                    LibPmem.Persist(p, (nuint)size);
                    break;
                case Persister.MSync:
                    MSync(b + (offset & ~4095L), 4096);
                    break;
                default:
                    Pmem.DangerousPersist(p, (nuint)size);
                    break;
            }
        }
    }

    private static void CopyLoop(DaxMapping map, nint baseAddress, nint source, long size, long count, Walk walk, Copier how)
    {
        byte* b = (byte*)baseAddress;
        byte* s = (byte*)source;
        for (long i = 0; i < count; i++)
        {
            long offset = walk.Next();
            switch (how)
            {
                case Copier.DirectPmem:
                    map.Write(new ReadOnlySpan<byte>(s, (int)size), offset);
                    break;
                case Copier.LibPmem:
                    LibPmem.MemcpyPersist(b + offset, s, (nuint)size);
                    break;
                case Copier.MSync:
                    Buffer.MemoryCopy(s, b + offset, size, size);
                    MSync(b + offset, (size + 4095) & ~4095L);
                    break;
                case Copier.MemoryCopy:
                    Buffer.MemoryCopy(s, b + offset, size, size);
                    break;
                default:
                    Pmem.DangerousCopy(b + offset, s, (nuint)size);
                    break;
            }
        }
    }

    private static void MSync(byte* address, long length)
    {
        if (LibC.MSync(address, (nuint)length, LibC.MS_SYNC) != 0)
        {
            throw new ToolException($"msync(MS_SYNC) failed with errno {Marshal.GetLastPInvokeError()} during the benchmark.");
        }
    }

    private static string? ProbeMSync(DaxMapping map)
    {
        if (LibC.MSync(map.DangerousGetPointer(), 4096, LibC.MS_SYNC) == 0)
        {
            return null;
        }
        int errno = Marshal.GetLastPInvokeError();
        return string.Create(CultureInfo.InvariantCulture, $"msync(MS_SYNC) is refused on this mapping (errno {errno}{(errno == 22 ? ", EINVAL: device-DAX has no page cache" : "")}): no msync column");
    }

    private static string DescribeLibPmem()
    {
        string file = "libpmem.so.1";
        foreach (string line in File.ReadLines("/proc/self/maps"))
        {
            int at = line.IndexOf('/', StringComparison.Ordinal);
            if (at >= 0 && line.Contains("libpmem.so", StringComparison.Ordinal))
            {
                file = line[at..];
                break;
            }
        }
        string? avx512 = Environment.GetEnvironmentVariable("PMEM_AVX512F");
        string? threshold = Environment.GetEnvironmentVariable("PMEM_MOVNT_THRESHOLD");
        // libpmem asks CPUID itself, not the .NET runtime (DOTNET_EnableAVX512F=0 does not reach it): read the
        // kernel's view of the same bits.
        bool cpuHasAvx512 = CpuInfoHasFlag("avx512f");
        // What libpmem 1.12's debug build logs at startup ("using movnt AVX512F" / "using movnt AVX").
        string isa = avx512 == "0" ? "256-bit AVX non-temporal stores (PMEM_AVX512F=0)"
            : cpuHasAvx512 ? "AVX-512F non-temporal stores (the default of libpmem 1.9 and later on an AVX-512F CPU; PMEM_AVX512F=0 turns it off)"
            : "256-bit AVX or SSE2 non-temporal stores (the CPU has no AVX-512F)";
        return $"libpmem: {file}; {isa}; PMEM_MOVNT_THRESHOLD={threshold ?? "unset (256)"}";
    }

    /// <summary>Whether /proc/cpuinfo lists <paramref name="flag"/> among the first processor's flags.</summary>
    internal static bool CpuInfoHasFlag(string flag)
    {
        foreach (string line in File.ReadLines("/proc/cpuinfo"))
        {
            if (line.StartsWith("flags", StringComparison.Ordinal))
            {
                return line.Split([' ', '\t', ':'], StringSplitOptions.RemoveEmptyEntries).Contains(flag, StringComparer.Ordinal);
            }
        }
        return false;
    }

    private static void Print(BenchReport report)
    {
        AnsiConsole.MarkupLineInterpolated($"[bold]machine[/] {report.Machine.CpuModel}, {report.Machine.LogicalCpus} CPUs, L1d {Sizes.Format(report.Machine.L1dBytes)}, L2 {Sizes.Format(report.Machine.L2Bytes)}, L3 {Sizes.Format(report.Machine.L3Bytes)} ({report.Machine.CacheSource}), Linux {report.Machine.Kernel}");
        AnsiConsole.MarkupLineInterpolated($"[bold]target[/] {report.Target.Path}: {report.Target.Description}");
        AnsiConsole.MarkupLineInterpolated($"[bold]rounds[/] {report.Rounds}, {report.Order}; cold destinations walk {Sizes.Format(report.Target.ColdRegionBytes)}");
        var table = new Table().AddColumns("op", "size", "dest", "contender", "ns/op", "spread", "MB/s", "ops/s", "DirectPmem / this");
        foreach (BenchResult result in report.Results)
        {
            foreach (ContenderResult c in result.Contenders)
            {
                RatioResult? ratio = result.Ratios.FirstOrDefault(r => r.Versus == c.Name);
                table.AddRow(result.Operation, Sizes.Format(result.Bytes), result.Destination, Markup.Escape(c.Name),
                    F(c.MedianNs), $"{c.SpreadPercent:0} %", F(c.MedianMBps), F(c.MedianOpsPerSecond),
                    ratio is null ? "" : $"{ratio.Median:0.000} ({ratio.P25:0.000}..{ratio.P75:0.000})");
            }
        }
        AnsiConsole.Write(table);
        var latency = new Table().AddColumns("op", "size", "contender", "p50 ns", "p99 ns", "samples");
        foreach (BenchResult result in report.Results.Where(r => r.Latency is not null))
        {
            foreach (LatencyResult l in result.Latency!)
            {
                latency.AddRow(result.Operation, Sizes.Format(result.Bytes), Markup.Escape(l.Name), F(l.P50Ns), F(l.P99Ns), l.Samples.ToString(CultureInfo.InvariantCulture));
            }
        }
        if (latency.Rows.Count > 0)
        {
            AnsiConsole.Write(latency);
        }
        AnsiConsole.MarkupLine("[grey]ns/op: median of the rounds; spread: interquartile range of the rounds / median; DirectPmem / this: per-round time ratio, median (quartiles), below 1 = DirectPmem faster.[/]");
        foreach (string note in report.Notes)
        {
            AnsiConsole.MarkupLineInterpolated($"[grey]note: {note}[/]");
        }
    }

    private static string F(double value) => value.ToString(value < 100 ? "0.00" : "0", CultureInfo.InvariantCulture);

    /// <summary>An in-process listener that turns the DirectPmem and DirectPmem.Storage counters on and off around a contender.</summary>
    private sealed class CounterListener : EventListener
    {
        private volatile EventSource? _core;
        private volatile EventSource? _storage;

        protected override void OnEventSourceCreated(EventSource eventSource)
        {
            if (eventSource.Name == PmemCounters.EventSourceName)
            {
                _core = eventSource;
            }
            else if (eventSource.Name == StorageCounters.EventSourceName)
            {
                _storage = eventSource;
            }
        }

        internal void Enable()
        {
            if (_core is null)
            {
                throw new InvalidOperationException("the DirectPmem EventSource does not exist: no mapping was made.");
            }
            var arguments = new Dictionary<string, string?> { ["EventCounterIntervalSec"] = "1" };
            EnableEvents(_core, EventLevel.Informational, EventKeywords.All, arguments);
            if (_storage is not null)
            {
                EnableEvents(_storage, EventLevel.Informational, EventKeywords.All, arguments);
            }
        }

        internal void Disable()
        {
            if (_core is not null)
            {
                DisableEvents(_core);
            }
            if (_storage is not null)
            {
                DisableEvents(_storage);
            }
        }
    }
}
