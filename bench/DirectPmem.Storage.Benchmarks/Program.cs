// Durable log append: DirectPmem.Storage PmemLog vs PMDK's pmemlog_append, side by side in one
// process with interleaved rounds (A B B A ...), on the same backing (files in one directory,
// default /dev/shm) in forced cache-line mode: DirectPmem with ForceCacheLineGranularity (and Populate, so that
// page faults of a never-touched ring are not measured: pmemlog_rewind reuses already-faulted pages),
// libpmem with PMEM_IS_PMEM_FORCE=1, so both flush with CLWB + SFENCE instead of msync.
//
//   dotnet run -c Release --project bench/DirectPmem.Storage.Benchmarks -- [--rounds 10] [--records 200000] [--dir /dev/shm] [--only 64x2,1024x1]
//
// --only runs just the listed record-size x thread-count rows (and no latency table): a quick A/B of one row.
// --split pairs the shared log with one log per thread (nothing shared between the appenders) instead of
// pmemlog_append: how much the appenders' coordination costs.
//
// Two more modes:
//   ... -- parts [--rounds 9] [--block 20000] [--dir /dev/shm]   where one append's time goes (1 thread, interleaved)
//   ... -- bdn --filter '*' [BenchmarkDotNet options]             BenchmarkDotNet detail (LogAppendBenchmarks);
//        run it from bench/DirectPmem.Storage.Benchmarks (cd there; dotnet run -c Release -- bdn ...) so
//        that BenchmarkDotNet finds this project through bench/DirectPmem.Benchmarks.sln
using System.Diagnostics;
using System.Globalization;
using BenchmarkDotNet.Running;
using DirectPmem.Mapping;
using DirectPmem.Storage;
using DirectPmem.Storage.Benchmarks;

if (args.Length > 0 && args[0] == "bdn")
{
    BenchmarkSwitcher.FromAssembly(typeof(LogAppendBenchmarks).Assembly).Run(args[1..]);
    return 0;
}
bool parts = args.Length > 0 && args[0] == "parts";
int rounds = parts ? 9 : 10;
int records = 200_000;
int block = 20_000;
string dir = "/dev/shm";
HashSet<string>? only = null;
bool split = false;
for (int i = parts ? 1 : 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--rounds": rounds = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--records" when !parts: records = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--block" when parts: block = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--dir": dir = args[++i]; break;
        case "--only" when !parts: only = [.. args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)]; break;
        case "--split" when !parts: split = true; break;
        default:
            Console.Error.WriteLine("usage: [--rounds N] [--records N] [--dir DIR] [--only 64x2,...] [--split] | parts [--rounds N] [--block N] [--dir DIR] | bdn [BenchmarkDotNet options]");
            return 2;
    }
}
if (parts)
{
    return Parts.Run(dir, rounds, block);
}

LibC.SetEnv("PMEM_IS_PMEM_FORCE", "1", 1);
bool havePmdk = LibPmemLog.TryLoad(out string why);
if (!havePmdk)
{
    Console.WriteLine($"pmemlog baseline skipped: {why}");
}

const long PoolSize = 512L << 20;
string ourPath = Path.Combine(dir, $"dpm-bench-{Environment.ProcessId}.pool");
string pmdkPath = Path.Combine(dir, $"pmemlog-bench-{Environment.ProcessId}.pool");
File.Delete(ourPath);
File.Delete(pmdkPath);
// --split: the B side of each pair is one log per thread (nothing shared between the appenders:
// the ceiling a shared log's coordination is measured against) instead of pmemlog_append.
var splitPools = new List<PmemPool>();
var splitLogs = new List<PmemLog>();
try
{
    using PmemPool pool = PmemPool.CreateFile(ourPath, PoolSize, "bench", new PoolCreateOptions { AllowVolatile = true } /* a benchmark runs on /dev/shm too */, mappingOptions: new DaxMappingOptions { ForceCacheLineGranularity = true, Populate = true });
    PmemLog log = PmemLog.Create(pool, pool.DataOffset, (pool.DataLength / 4096) * 4096);
    nint plp = 0;
    if (havePmdk)
    {
        plp = LibPmemLog.Create(pmdkPath, (nuint)PoolSize, 0x180);
        if (plp == 0)
        {
            Console.WriteLine($"pmemlog_create failed: {LibPmemLog.LastError()}");
            havePmdk = false;
        }
    }
    if (split)
    {
        havePmdk = false;
        for (int t = 0; t < 2; t++)
        {
            string path = Path.Combine(dir, $"dpm-bench-{Environment.ProcessId}-split{t}.pool");
            File.Delete(path);
            PmemPool p = PmemPool.CreateFile(path, PoolSize / 4, "bench", new PoolCreateOptions { AllowVolatile = true }, mappingOptions: new DaxMappingOptions { ForceCacheLineGranularity = true, Populate = true });
            File.Delete(path); // the mapping stays valid
            splitPools.Add(p);
            splitLogs.Add(PmemLog.Create(p, p.DataOffset, (p.DataLength / 4096) * 4096));
        }
    }
    Console.WriteLine($"machine: {Machine()}; backing {dir}; DirectPmem granularity {pool.Mapping.Granularity}; {Environment.ProcessorCount} CPUs");
    Console.WriteLine($"{rounds} interleaved rounds of {records} appends per configuration");
    // Warm-up until the JIT has tiered PmemLog.Append up (tier 1 needs 30 calls after 100 ms of no new
    // tier-0 code, then a background compile): about a second of appends of both sizes.
    var warm = Stopwatch.StartNew();
    while (warm.ElapsedMilliseconds < 1000)
    {
        RunOurs(pool, log, 64, 1, 20_000);
        RunOurs(pool, log, 1024, 1, 20_000);
    }
    // Where the hypervisor puts the two vCPUs decides what a shared line costs (on this Zen 2 VM a
    // one-way transfer measured 28 ns in some runs and 110-140 ns in others, and the 2-thread rows
    // follow it): print it before and after the table, so that a run is labelled by its placement.
    Console.WriteLine($"cache-line transfer between two threads (ping-pong, one way): {LineTransferNanoseconds():F0} ns");
    Console.WriteLine();
    if (split)
    {
        Console.WriteLine("--split: the second column is one DirectPmem log per thread (nothing shared), not pmemlog_append");
    }
    Console.WriteLine("| record | threads | DirectPmem PmemLog (Mops/s, median [min-max]) | pmemlog_append (Mops/s, median [min-max]) | ratio (median of per-pair ratios [min-max]) |");
    Console.WriteLine("|---|---|---|---|---|");
    foreach (int size in new[] { 64, 1024 })
    {
        foreach (int threads in new[] { 1, 2 })
        {
            if (only is not null && !only.Contains(string.Create(CultureInfo.InvariantCulture, $"{size}x{threads}")))
            {
                continue;
            }
            var ours = new List<double>();
            var theirs = new List<double>();
            // Warm-up of both, then A B B A ... pairs.
            RunOurs(pool, log, size, threads, records / 10);
            if (split)
            {
                RunSplit(splitPools, splitLogs, size, threads, records / 10);
            }
            else if (havePmdk)
            {
                RunPmdk(plp, size, threads, records / 10);
            }
            for (int r = 0; r < rounds; r++)
            {
                bool oursFirst = r % 2 == 0;
                if (oursFirst || !havePmdk)
                {
                    ours.Add(RunOurs(pool, log, size, threads, records));
                }
                if (split)
                {
                    theirs.Add(RunSplit(splitPools, splitLogs, size, threads, records));
                }
                else if (havePmdk)
                {
                    theirs.Add(RunPmdk(plp, size, threads, records));
                }
                if (!oursFirst && (havePmdk || split))
                {
                    ours.Add(RunOurs(pool, log, size, threads, records));
                }
            }
            string pmdkCell = havePmdk || split ? Cell(theirs) : "skipped";
            string ratioCell = havePmdk || split ? Cell(ours.Zip(theirs, (a, b) => a / b).ToList(), "F2", "x") : "n/a";
            Console.WriteLine($"| {size} B | {threads} | {Cell(ours)} | {pmdkCell} | {ratioCell} |");
        }
    }

    Console.WriteLine($"cache-line transfer between two threads after the table: {LineTransferNanoseconds():F0} ns");
    if (only is not null)
    {
        if (plp != 0)
        {
            LibPmemLog.Close(plp);
        }
        return 0;
    }
    Console.WriteLine();
    Console.WriteLine("Latency of one durable append, 1 thread, interleaved blocks of 20,000 (ns):");
    Console.WriteLine("| record | DirectPmem p50 | DirectPmem p99 | pmemlog p50 | pmemlog p99 |");
    Console.WriteLine("|---|---|---|---|---|");
    foreach (int size in new[] { 64, 1024 })
    {
        var oursLat = new List<double>();
        var theirsLat = new List<double>();
        for (int r = 0; r < 6; r++)
        {
            oursLat.AddRange(LatencyOurs(pool, log, size, 20_000));
            if (havePmdk)
            {
                theirsLat.AddRange(LatencyPmdk(plp, size, 20_000));
            }
        }
        oursLat.Sort();
        theirsLat.Sort();
        string p = havePmdk ? $"{Percentile(theirsLat, 0.50):F0} | {Percentile(theirsLat, 0.99):F0}" : "skipped | skipped";
        Console.WriteLine($"| {size} B | {Percentile(oursLat, 0.50):F0} | {Percentile(oursLat, 0.99):F0} | {p} |");
    }
    if (plp != 0)
    {
        LibPmemLog.Close(plp);
    }
}
finally
{
    File.Delete(ourPath);
    File.Delete(pmdkPath);
    foreach (PmemPool p in splitPools)
    {
        p.Dispose();
    }
}
return 0;

static double RunOurs(PmemPool pool, PmemLog log, int size, int threads, int total)
{
    log = Rewind(pool, log);
    return Parallel(threads, total, size, (payload, count) =>
    {
        for (int i = 0; i < count; i++)
        {
            log.Append(payload);
        }
    });
}

static double RunSplit(List<PmemPool> pools, List<PmemLog> logs, int size, int threads, int total)
{
    for (int t = 0; t < threads; t++)
    {
        Rewind(pools[t], logs[t]);
    }
    int next = 0;
    return Parallel(threads, total, size, (payload, count) =>
    {
        PmemLog own = logs[Interlocked.Increment(ref next) - 1];
        for (int i = 0; i < count; i++)
        {
            own.Append(payload);
        }
    });
}

static unsafe double RunPmdk(nint plp, int size, int threads, int total)
{
    LibPmemLog.Rewind(plp);
    return Parallel(threads, total, size, (payload, count) =>
    {
        fixed (byte* p = payload)
        {
            for (int i = 0; i < count; i++)
            {
                if (LibPmemLog.Append(plp, p, (nuint)payload.Length) != 0)
                {
                    throw new InvalidOperationException("pmemlog_append: " + LibPmemLog.LastError());
                }
            }
        }
    });
}

static double Parallel(int threads, int total, int size, Action<byte[], int> body)
{
    int each = total / threads;
    using var barrier = new Barrier(threads + 1);
    var workers = new Thread[threads];
    for (int t = 0; t < threads; t++)
    {
        byte[] payload = new byte[size];
        Random.Shared.NextBytes(payload);
        workers[t] = new Thread(() =>
        {
            barrier.SignalAndWait();
            body(payload, each);
        });
        workers[t].Start();
    }
    barrier.SignalAndWait();
    long start = Stopwatch.GetTimestamp();
    foreach (Thread worker in workers)
    {
        worker.Join();
    }
    double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
    return each * threads / seconds / 1e6;
}

static List<double> LatencyOurs(PmemPool pool, PmemLog log, int size, int count)
{
    log = Rewind(pool, log);
    byte[] payload = new byte[size];
    var result = new List<double>(count);
    for (int i = 0; i < count; i++)
    {
        long t0 = Stopwatch.GetTimestamp();
        log.Append(payload);
        result.Add((Stopwatch.GetTimestamp() - t0) * 1e9 / Stopwatch.Frequency); // raw ticks: a TimeSpan rounds to 100 ns
    }
    return result;
}

static unsafe List<double> LatencyPmdk(nint plp, int size, int count)
{
    LibPmemLog.Rewind(plp);
    byte[] payload = new byte[size];
    var result = new List<double>(count);
    fixed (byte* p = payload)
    {
        for (int i = 0; i < count; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            LibPmemLog.Append(plp, p, (nuint)size);
            result.Add((Stopwatch.GetTimestamp() - t0) * 1e9 / Stopwatch.Frequency); // raw ticks: a TimeSpan rounds to 100 ns
        }
    }
    return result;
}

// Between rounds the log is emptied the way a user empties it: truncated to its tail (one 8-byte
// publish of the head), so the ring keeps moving and wraps, and every round appends where the last
// one stopped. (pmemlog has no truncation: pmemlog_rewind empties it to the start of its area.)
static PmemLog Rewind(PmemPool pool, PmemLog log)
{
    log.Truncate(log.Tail);
    return log;
}

// One way of a cache line between two threads: each waits for the other's value in one padded
// word and stores the next (the lead's C ping-pong, /tmp/pp.c, in C#). On one CPU this measures
// the scheduler instead; the headline needs 2.
static double LineTransferNanoseconds(int transfers = 1_000_000)
{
    if (Environment.ProcessorCount < 2)
    {
        return double.NaN;
    }
    long[] line = new long[32]; // the word at 16: a line of its own whatever the array's alignment
    using var barrier = new Barrier(2);
    var other = new Thread(() =>
    {
        barrier.SignalAndWait();
        for (long i = 1; i < transfers; i += 2)
        {
            while (Volatile.Read(ref line[16]) != i)
            {
            }
            Volatile.Write(ref line[16], i + 1);
        }
    });
    other.Start();
    barrier.SignalAndWait();
    long start = Stopwatch.GetTimestamp();
    for (long i = 0; i < transfers; i += 2)
    {
        while (Volatile.Read(ref line[16]) != i)
        {
        }
        Volatile.Write(ref line[16], i + 1);
    }
    other.Join();
    return Stopwatch.GetElapsedTime(start).TotalNanoseconds / transfers;
}

static double Percentile(List<double> sorted, double q) => sorted.Count == 0 ? double.NaN : sorted[(int)Math.Min(sorted.Count - 1, q * sorted.Count)];

static string Cell(List<double> values, string format = "F2", string unit = "")
{
    var sorted = values.Order().ToList();
    double median = sorted[sorted.Count / 2];
    return string.Create(CultureInfo.InvariantCulture, $"{median.ToString(format, CultureInfo.InvariantCulture)}{unit} [{sorted[0].ToString(format, CultureInfo.InvariantCulture)}-{sorted[^1].ToString(format, CultureInfo.InvariantCulture)}]");
}

static string Machine()
{
    string model = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";
    return model;
}
