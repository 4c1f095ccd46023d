// Transaction and key-value benchmarks (see bench/README.md for the results and the machine).
//
//   dotnet run -c Release --project bench/DirectPmem.Transactions.Benchmarks -- commit [pairs] [ops]
//       commit rate with 1 and 4 modified 64 B ranges, DirectPmem vs libpmemobj, one process,
//       interleaved rounds (A,S,B then B,S,A ...), all in forced cache-line mode on tmpfs files.
//       DirectPmem changes the ranges with Transaction.Write (the redo path, one fence: what
//       pmemobj_tx_add_range + memcpy does for libpmemobj), and, in a second column, with AddRange
//       + GetSpan (the span path, an undo log, two fences)
//   dotnet run -c Release --project bench/DirectPmem.Transactions.Benchmarks -- probe [name part]
//       lowest mean over 300 batches of 500 commits after half a second of warm-up (the cost when the
//       machine lets it run), both sides,
//       beside the parts a commit is made of: a fence after 1, 2 or 4 flushed lines, non-temporal
//       stores, and a load of a line just flushed (a flush may evict it)
//   dotnet run -c Release --project bench/DirectPmem.Transactions.Benchmarks -- kv [seconds] [repeats]
//       PersistentHashTable insert / update / get, 16 B keys, 100 B values, 1 and 2 threads
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using DirectPmem.KeyValue;
using DirectPmem.Mapping;
using DirectPmem.Persistence;
using DirectPmem.Storage.Transactions;
using DirectPmem.Transactions.Benchmarks;

string mode = args.Length > 0 ? args[0] : "commit";
int Arg(int index, int fallback) => args.Length > index ? int.Parse(args[index], CultureInfo.InvariantCulture) : fallback;
string dir = Directory.CreateTempSubdirectory("directpmem-txbench-").FullName;
if (Directory.Exists("/dev/shm"))
{
    Directory.Delete(dir);
    dir = Path.Combine("/dev/shm", $"directpmem-txbench-{Environment.ProcessId}");
    Directory.CreateDirectory(dir);
}
Console.WriteLine($"# {Environment.ProcessorCount} CPUs, {RuntimeInformation.FrameworkDescription}, flush {Pmem.FlushInstruction}, backing tmpfs files in {dir}");
try
{
    if (mode == "commit")
    {
        Commit.Run(dir, pairs: Arg(1, 10), ops: Arg(2, 50_000));
    }
    else if (mode == "probe")
    {
        Commit.Probe(dir, args.Length > 1 ? args[1] : null);
    }
    else if (mode == "kv")
    {
        KeyValue.Run(dir, seconds: Arg(1, 2), repeats: Arg(2, 3));
    }
    else
    {
        Console.Error.WriteLine("usage: commit [pairs] [ops] | kv [seconds] [repeats]");
        return 2;
    }
}
finally
{
    Directory.Delete(dir, recursive: true);
}
return 0;

internal static class Stats
{
    public static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    public static string Nanoseconds(List<double> values) =>
        string.Create(CultureInfo.InvariantCulture, $"{Median(values):F0} ({values.Min():F0}–{values.Max():F0})");

    public static string Rate(List<double> rates) =>
        string.Create(CultureInfo.InvariantCulture, $"{Median(rates) / 1000:F0} k/s ({rates.Min() / 1000:F0}–{rates.Max() / 1000:F0})");
}

internal static unsafe class Commit
{
    private const long PoolSize = 64L << 20;
    private const int Stride = 256;   // ranges 256 B apart: never merged, never sharing a line

    public static void Run(string dir, int pairs, int ops)
    {
        // Forced cache-line mode on both sides: DirectPmem by option, libpmem(obj) by its own switch,
        // which it reads from the C environment when it loads (Environment.SetEnvironmentVariable does not reach it).
        LibC.SetEnv("PMEM_IS_PMEM_FORCE", "1", 1);
        using PmemFile file = PmemFile.Create(Path.Combine(dir, "directpmem.pool"), PoolSize);
        using DaxMapping map = file.Map(new DaxMappingOptions { ForceCacheLineGranularity = true, Populate = true });
        TransactionalHeap heap = TransactionalHeap.Create(map, 0, PoolSize, new TransactionalHeapOptions { RootSize = 4096 });
        long root = heap.RootOffset;
        Console.WriteLine($"# DirectPmem: {map.Granularity} granularity, {heap.LaneCount} lanes of {heap.LaneLogSize} B");

        bool haveObj = LibPmemObj.IsAvailable(out string reason);
        nint pop = 0;
        LibPmemObj.PMEMoid oid = default;
        byte* obj = null;
        if (haveObj)
        {
            pop = LibPmemObj.Create(Path.Combine(dir, "pmemobj.pool"), "bench", (nuint)PoolSize, 0x180);
            if (pop == 0)
            {
                throw new InvalidOperationException("pmemobj_create: " + Marshal.PtrToStringUTF8(LibPmemObj.ErrorMessage()));
            }
            oid = LibPmemObj.Root(pop, 4096);
            obj = (byte*)LibPmemObj.Direct(oid);
        }
        else
        {
            Console.WriteLine($"# libpmemobj skipped: {reason}");
        }

        Console.WriteLine($"# {pairs} interleaved pairs of rounds, {ops} commits per round");
        Console.WriteLine("| modified 64 B ranges | DirectPmem Write (redo) commits/s, median (min–max) | DirectPmem spans (undo) commits/s | libpmemobj commits/s, median (min–max) | Write / libpmemobj, median (min–max of the pairs) | spans / libpmemobj |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|");
        foreach (int ranges in new[] { 1, 4 })
        {
            var dp = new List<double>();
            var sp = new List<double>();
            var po = new List<double>();
            var ratios = new List<double>();
            var spanRatios = new List<double>();
            // warm-up
            Measure(() => DirectPmemWriteCommit(heap, root, ranges, 1), ops / 10);
            Measure(() => DirectPmemCommit(heap, root, ranges, 1), ops / 10);
            if (haveObj)
            {
                Measure(() => PmemObjCommit(pop, oid, obj, ranges, 1), ops / 10);
            }
            for (int pair = 0; pair < pairs; pair++)
            {
                byte v = (byte)pair;
                double a, s, b = 0;
                if (pair % 2 == 0 || !haveObj)
                {
                    a = Measure(() => DirectPmemWriteCommit(heap, root, ranges, v), ops);
                    s = Measure(() => DirectPmemCommit(heap, root, ranges, v), ops);
                    if (haveObj)
                    {
                        b = Measure(() => PmemObjCommit(pop, oid, obj, ranges, v), ops);
                    }
                }
                else
                {
                    b = Measure(() => PmemObjCommit(pop, oid, obj, ranges, v), ops);
                    s = Measure(() => DirectPmemCommit(heap, root, ranges, v), ops);
                    a = Measure(() => DirectPmemWriteCommit(heap, root, ranges, v), ops);
                }
                dp.Add(a);
                sp.Add(s);
                if (haveObj)
                {
                    po.Add(b);
                    ratios.Add(a / b);
                    spanRatios.Add(s / b);
                }
            }
            Console.WriteLine(haveObj
                ? string.Create(CultureInfo.InvariantCulture, $"| {ranges} | {Stats.Rate(dp)} | {Stats.Rate(sp)} | {Stats.Rate(po)} | {Stats.Median(ratios):F2}x ({ratios.Min():F2}–{ratios.Max():F2}) | {Stats.Median(spanRatios):F2}x ({spanRatios.Min():F2}–{spanRatios.Max():F2}) |")
                : $"| {ranges} | {Stats.Rate(dp)} | {Stats.Rate(sp)} | skipped | - | - |");
        }
        if (haveObj)
        {
            LibPmemObj.Close(pop);
        }
    }

    // Lowest mean over many short batches: what an operation costs when the machine lets it run.
    public static void Probe(string dir, string? only)
    {
        LibC.SetEnv("PMEM_IS_PMEM_FORCE", "1", 1);
        if (!LibPmemObj.IsAvailable(out string reason))
        {
            Console.WriteLine($"# probe skipped: {reason}");
            return;
        }
        using PmemFile file = PmemFile.Create(Path.Combine(dir, "probe.pool"), PoolSize);
        using DaxMapping map = file.Map(new DaxMappingOptions { ForceCacheLineGranularity = true, Populate = true });
        TransactionalHeap heap = TransactionalHeap.Create(map, 0, PoolSize, new TransactionalHeapOptions { RootSize = 4096 });
        long root = heap.RootOffset;
        nint pop = LibPmemObj.Create(Path.Combine(dir, "probe-obj.pool"), "bench", (nuint)PoolSize, 0x180);
        LibPmemObj.PMEMoid oid = LibPmemObj.Root(pop, 4096);
        byte* obj = (byte*)LibPmemObj.Direct(oid);
        byte[] ntSource = new byte[96];
        byte[] ntLines = new byte[128];
        long[] sink = new long[1];
        (string, Action)[] variants =
        [
            ("store 64 B + persist", () => { map.GetSpan(root + 1024, 64).Fill(1); map.Persist(root + 1024, 64); }),
            ("3 x (store + persist)", () => { map.GetSpan(root + 1024, 64).Fill(1); map.Persist(root + 1024, 64); map.GetSpan(root + 1280, 64).Fill(1); map.Persist(root + 1280, 64); map.Publish(root + 1536, 5); }),
            ("2 lines stored + flushed, 1 fence", () => { map.GetSpan(root + 1024, 128).Fill(1); map.Persist(root + 1024, 128); }),
            ("4 lines stored + flushed, 1 fence", () => { map.GetSpan(root + 1024, 256).Fill(1); map.Persist(root + 1024, 256); }),
            ("2 x (2 lines + fence)", () => { map.GetSpan(root + 1024, 128).Fill(1); map.Persist(root + 1024, 128); map.GetSpan(root + 1280, 64).Fill(1); map.GetSpan(root + 1536, 64).Fill(1); map.Flush(root + 1280, 64); map.Flush(root + 1536, 64); map.Drain(); }),
            ("96 B non-temporal + fence", () => map.Write(ntSource, root + 1024, PmemCopyOptions.NonTemporal)),
            ("96 B non-temporal, 2 lines flushed, 1 fence", () => { map.Write(ntSource, root + 1024, PmemCopyOptions.NonTemporal | PmemCopyOptions.NoDrain); map.GetSpan(root + 1280, 64).Fill(1); map.GetSpan(root + 1536, 64).Fill(1); map.Flush(root + 1280, 64); map.Flush(root + 1536, 64); map.Drain(); }),
            ("128 B (2 whole lines) non-temporal + fence", () => map.Write(ntLines, root + 1024, PmemCopyOptions.NonTemporal)),
            ("128 B non-temporal, 1 line stored + flushed, 1 fence", () => { map.Write(ntLines, root + 1024, PmemCopyOptions.NonTemporal | PmemCopyOptions.NoDrain); map.GetSpan(root + 1280, 64).Fill(1); map.Flush(root + 1280, 64); map.Drain(); }),
            ("3 lines stored + flushed, 1 fence", () => { map.GetSpan(root + 1024, 192).Fill(1); map.Persist(root + 1024, 192); }),
            // Their difference is what a load of a line costs after a flush of it: a miss when the flush evicts the line.
            ("fence, then load a line", () => { map.Drain(); sink[0] += map.GetReadOnlyRef<long>(root + 2048); }),
            ("flush a line + fence, then load it", () => { map.Flush(root + 2048, 64); map.Drain(); sink[0] += map.GetReadOnlyRef<long>(root + 2048); }),
            ("DirectPmem Begin + Commit of nothing", () => { using Transaction tx = heap.Begin(); tx.Commit(); }),
            ("DirectPmem Write + Abort (redo entry written and flushed, no fence), 1 range", () => { Span<byte> b = stackalloc byte[64]; using Transaction tx = heap.Begin(); tx.Write(root, b); tx.Abort(); }),
            ("DirectPmem Write commit (redo), 1 range", () => DirectPmemWriteCommit(heap, root, 1, 1)),
            ("DirectPmem span commit (undo), 1 range", () => DirectPmemCommit(heap, root, 1, 1)),
            ("libpmemobj commit, 1 range", () => PmemObjCommit(pop, oid, obj, 1, 1)),
            ("DirectPmem Write commit (redo), 4 ranges", () => DirectPmemWriteCommit(heap, root, 4, 1)),
            ("DirectPmem span commit (undo), 4 ranges", () => DirectPmemCommit(heap, root, 4, 1)),
            ("libpmemobj commit, 4 ranges", () => PmemObjCommit(pop, oid, obj, 4, 1)),
        ];
        foreach ((string name, Action op) in variants)
        {
            if (only is not null && !name.Contains(only, StringComparison.Ordinal))
            {
                continue;
            }
            // Warm up for half a second first: tiered compilation replaces a method's first code only
            // after a background delay, and 300 short batches end sooner than that.
            long warm = Stopwatch.GetTimestamp();
            while (Stopwatch.GetElapsedTime(warm).TotalMilliseconds < 500)
            {
                Measure(op, 500);
            }
            double best = double.MaxValue;
            for (int batch = 0; batch < 300; batch++)
            {
                best = Math.Min(best, 1e9 / Measure(op, 500));
            }
            Console.WriteLine($"{name}: {best:F0} ns");
        }
        LibPmemObj.Close(pop);
    }

    private static double Measure(Action commit, int ops)
    {
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < ops; i++)
        {
            commit();
        }
        return ops / Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    // The redo path: the new bytes go into the lane's log; one fence at Commit.
    private static void DirectPmemWriteCommit(TransactionalHeap heap, long root, int ranges, byte value)
    {
        Span<byte> bytes = stackalloc byte[64];
        bytes.Fill(value);
        using Transaction tx = heap.Begin();
        for (int k = 0; k < ranges; k++)
        {
            tx.Write(root + k * Stride, bytes);
        }
        tx.Commit();
    }

    // The span path: snapshots into the undo log, a fence, in-place stores, a fence at Commit.
    private static void DirectPmemCommit(TransactionalHeap heap, long root, int ranges, byte value)
    {
        using Transaction tx = heap.Begin();
        for (int k = 0; k < ranges; k++)
        {
            tx.AddRange(root + k * Stride, 64);
        }
        for (int k = 0; k < ranges; k++)
        {
            tx.GetSpan(root + k * Stride, 64).Fill(value);
        }
        tx.Commit();
    }

    private static void PmemObjCommit(nint pop, LibPmemObj.PMEMoid root, byte* data, int ranges, byte value)
    {
        if (LibPmemObj.TxBegin(pop, 0, 0) != 0)
        {
            throw new InvalidOperationException("pmemobj_tx_begin: " + Marshal.PtrToStringUTF8(LibPmemObj.ErrorMessage()));
        }
        for (int k = 0; k < ranges; k++)
        {
            if (LibPmemObj.TxAddRange(root, (ulong)(k * Stride), 64) != 0)
            {
                throw new InvalidOperationException("pmemobj_tx_add_range: " + Marshal.PtrToStringUTF8(LibPmemObj.ErrorMessage()));
            }
        }
        for (int k = 0; k < ranges; k++)
        {
            new Span<byte>(data + k * Stride, 64).Fill(value);
        }
        LibPmemObj.TxCommit();
        if (LibPmemObj.TxEnd() != 0)
        {
            throw new InvalidOperationException("pmemobj_tx_end: " + Marshal.PtrToStringUTF8(LibPmemObj.ErrorMessage()));
        }
    }
}

internal static class KeyValue
{
    private const long Size = 64L << 20;
    private const int Keys = 100_000;

    public static void Run(string dir, int seconds, int repeats)
    {
        byte[][] keys = Enumerable.Range(0, 2 * Keys).Select(i => System.Text.Encoding.ASCII.GetBytes($"key-{i:D12}")).ToArray();
        byte[] value = new byte[100];
        Random.Shared.NextBytes(value);
        Console.WriteLine($"# {Keys} keys of 16 B, values of 100 B, 65536 buckets, {seconds} s per measurement, {repeats} repeats");
        // CPU time per operation (the process's user + system time over the operations) says what an
        // operation costs where the wall-clock rate mostly says how much CPU the machine gave us:
        // cache lines moving between cores stall the CPU and count; waiting for a CPU does not.
        Console.WriteLine("| operation | threads | ops/s, median (min–max) | CPU ns/op, median (min–max) |");
        Console.WriteLine("|---|---:|---:|---:|");
        foreach (int threads in new[] { 1, 2 })
        {
            var insert = new List<double>();
            var update = new List<double>();
            var get = new List<double>();
            List<double>[] cpu = [[], [], []];
            for (int r = 0; r < repeats; r++)
            {
                string path = Path.Combine(dir, $"kv-{threads}-{r}.pool");
                using PmemFile file = PmemFile.Create(path, Size);
                using DaxMapping map = file.Map(new DaxMappingOptions { ForceCacheLineGranularity = true, Populate = true });
                using PersistentHashTable table = PersistentHashTable.Create(map, 0, Size, buckets: 65536, lanes: 4);
                // insert: every thread inserts its share of the keys into the empty table
                long start = Stopwatch.GetTimestamp();
                TimeSpan cpuStart = Process.GetCurrentProcess().TotalProcessorTime;
                Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
                {
                    for (int i = t; i < Keys; i += threads)
                    {
                        table.Put(keys[i], value);
                    }
                });
                insert.Add(Keys / Stopwatch.GetElapsedTime(start).TotalSeconds);
                cpu[0].Add((Process.GetCurrentProcess().TotalProcessorTime - cpuStart).TotalNanoseconds / Keys);
                update.Add(Timed(threads, seconds, (t, i) => table.Put(keys[Pick(t, i)], value), cpu[1]));
                byte[][] buffers = [new byte[128], new byte[128]];
                get.Add(Timed(threads, seconds, (t, i) =>
                {
                    if (!table.TryGet(keys[Pick(t, i)], buffers[t], out _))
                    {
                        throw new InvalidOperationException("a preloaded key is missing");
                    }
                }, cpu[2]));
                File.Delete(path);
            }
            Console.WriteLine($"| insert (new key, allocates) | {threads} | {Stats.Rate(insert)} | {Stats.Nanoseconds(cpu[0])} |");
            Console.WriteLine($"| put (existing key, in place) | {threads} | {Stats.Rate(update)} | {Stats.Nanoseconds(cpu[1])} |");
            Console.WriteLine($"| get | {threads} | {Stats.Rate(get)} | {Stats.Nanoseconds(cpu[2])} |");
        }
    }

    private static int Pick(int thread, long i) => (int)(((ulong)(i + thread * 7919) * 0x9E3779B97F4A7C15 >> 20) % Keys);

    private static double Timed(int threads, int seconds, Action<int, long> op, List<double> cpuPerOp)
    {
        long total = 0;
        long deadline = Stopwatch.GetTimestamp() + seconds * Stopwatch.Frequency;
        long start = Stopwatch.GetTimestamp();
        TimeSpan cpuStart = Process.GetCurrentProcess().TotalProcessorTime;
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
        {
            long n = 0;
            while (Stopwatch.GetTimestamp() < deadline)
            {
                for (int k = 0; k < 256; k++)
                {
                    op(t, n++);
                }
            }
            Interlocked.Add(ref total, n);
        });
        double rate = total / Stopwatch.GetElapsedTime(start).TotalSeconds;
        cpuPerOp.Add((Process.GetCurrentProcess().TotalProcessorTime - cpuStart).TotalNanoseconds / total);
        return rate;
    }
}
