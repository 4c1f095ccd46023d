using System.Diagnostics;
using System.Globalization;
using System.Text;
using DirectPmem.Mapping;
using DirectPmem.Storage.Tests.Transactions.KeyValue;
using DirectPmem.Storage.Transactions;
using DirectPmem.Testing;
using Xunit;

namespace DirectPmem.Storage.Tests.Transactions;

/// <summary>
/// The tests' key-value store (<see cref="PersistentHashTable"/>, once the sample's): its operations, simulated power
/// failures at every drain, and kill -9 of a child test process (<see cref="StressChild"/>) that runs it.
/// </summary>
public sealed class KeyValueTests(ITestOutputHelper output)
{
    private const long Length = 64 * 1024;

    private static Dictionary<string, byte[]> Contents(PersistentHashTable table) =>
        table.Entries().ToDictionary(e => Convert.ToHexString(e.Key), e => e.Value);

    private static Dictionary<string, byte[]> Model(ulong seed, long operations)
    {
        var model = new Dictionary<string, byte[]>();
        for (long i = 0; i < operations; i++)
        {
            StressOps.Apply(model, seed, i);
        }
        return model;
    }

    private static bool Same(Dictionary<string, byte[]> a, Dictionary<string, byte[]> b) =>
        a.Count == b.Count && a.All(p => b.TryGetValue(p.Key, out byte[]? v) && v.AsSpan().SequenceEqual(p.Value));

    [Fact]
    public void PutGetDeleteAndIterate()
    {
        using SimulatedDevice device = SimulatedDevice.Create(Length);
        using (PersistentHashTable table = PersistentHashTable.Create(device.Mapping, 0, Length, buckets: 4))
        {
            for (int i = 0; i < 40; i++)
            {
                table.Put(Encoding.ASCII.GetBytes($"key{i}"), Encoding.ASCII.GetBytes($"value{i}"));
            }
            table.Put("key7"u8, "replaced"u8);
            table.Put("key8"u8, ""u8);
            Assert.True(table.Delete("key9"u8));
            Assert.False(table.Delete("key9"u8));
            Assert.Equal("replaced", Encoding.ASCII.GetString(table.Get("key7"u8)!));
            Assert.Empty(table.Get("key8"u8)!);
            Assert.Null(table.Get("key9"u8));
            Assert.Equal(39, table.Entries().Count());
            Assert.Throws<ArgumentOutOfRangeException>(() => table.Put(new byte[33], "x"u8));
            Assert.Throws<ArgumentOutOfRangeException>(() => table.Put("k"u8, new byte[129]));
        }
        // After a power failure now, the media holds everything that returned.
        using SimulatedDevice after = SimulatedDevice.FromImage(device.GetMediaCopy());
        using PersistentHashTable reopened = PersistentHashTable.Open(after.Mapping, 0, Length);
        Assert.Equal(39, reopened.Entries().Count());
        Assert.Equal("value39", Encoding.ASCII.GetString(reopened.Get("key39"u8)!));
        int free = reopened.FreeEntries;
        for (int i = 0; i < free; i++)
        {
            reopened.Put(Encoding.ASCII.GetBytes($"more{i}"), "x"u8);
        }
        Assert.Throws<HeapFullException>(() => reopened.Put("one-too-many"u8, "x"u8));
        Assert.Equal("x", Encoding.ASCII.GetString(reopened.Get("more0"u8)!));
    }

    [Fact]
    public void AfterAPowerFailureAtAnyDrainTheStoreHoldsExactlyTheAcknowledgedOperations()
    {
        const ulong Seed = 0xC0FFEE;
        const int Operations = 30;
        var expected = Enumerable.Range(0, Operations + 1).Select(n => Model(Seed, n)).ToList();
        AckSweep.Result result = new AckSweep
        {
            DeviceLength = Length,
            Setup = map => PersistentHashTable.Create(map, 0, Length, buckets: 8).Dispose(),
            Workload = (map, ack) =>
            {
                using PersistentHashTable table = PersistentHashTable.Open(map, 0, Length);
                for (int i = 0; i < Operations; i++)
                {
                    (byte[] key, byte[]? value) = StressOps.Op(Seed, i);
                    if (value is null)
                    {
                        table.Delete(key);
                    }
                    else
                    {
                        table.Put(key, value);
                    }
                    ack();
                }
            },
            Recover = (map, acked) =>
            {
                using PersistentHashTable table = PersistentHashTable.Open(map, 0, Length);
                Dictionary<string, byte[]> actual = Contents(table);
                if (!Same(actual, expected[acked]) && !(acked < Operations && Same(actual, expected[acked + 1])))
                {
                    throw new InvalidDataException($"the store does not hold the first {acked} (or {acked + 1}) operations: {actual.Count} entries");
                }
                // and it keeps working: one more put after recovery
                table.Put("after-recovery"u8, "ok"u8);
            },
        }.Run();
        output.WriteLine($"{result.Drains} drains, {result.Images} images, {result.Acks} operations");
        result.ThrowIfFailed();
        Assert.True(expected.Select(m => m.Count).Distinct().Count() > 3, "the operations change the contents");
    }

    [Fact]
    public void AfterKillMinus9EveryAcknowledgedPutIsPresentAndNoValueIsHalfWritten() => WithChildAndPool((child, file) =>
    {
        const ulong Seed = 0xBADC0DE;
        var random = new Random(1234);
        long next = 0, totalAcked = 0;
        int rounds = TxKnobs.KillRounds, inFlightApplied = 0;
        var model = new Dictionary<string, byte[]>();
        for (int round = 0; round < rounds; round++)
        {
            long lastAck = RunAndKill(child, file, next, Seed, random.Next(0, 200));
            long acked = lastAck + 1;       // operations 0 .. lastAck returned
            Assert.True(acked >= next, $"round {round}: acknowledged {acked} before starting at {next}");
            totalAcked += acked - next;
            for (long i = next; i < acked; i++)
            {
                StressOps.Apply(model, Seed, i);
            }
            using PersistentHashTable store = PersistentHashTable.OpenFile(file);
            Dictionary<string, byte[]> actual = Contents(store);
            if (Same(actual, model))
            {
                next = acked;
            }
            else
            {
                StressOps.Apply(model, Seed, acked);  // the operation in flight may have committed
                Assert.True(Same(actual, model), $"round {round}: after {acked} acknowledged operations the store holds {actual.Count} entries that match neither {acked} nor {acked + 1} operations");
                next = acked + 1;
                inFlightApplied++;
            }
        }
        output.WriteLine($"{rounds} rounds, {totalAcked} acknowledged operations, {inFlightApplied} rounds where the operation in flight had committed");
        Assert.True(totalAcked >= rounds, "the child made progress in every round");
    });

    // Two threads on two lanes, killed at random moments: their keys are disjoint, but they share
    // buckets (and the locks of their stripes) and allocate entries the other thread freed, so one
    // lane changes in place bytes of the other's last commit, which must be confirmed first (a
    // commit judged by its data hash after that change would be rolled back over the other's).
    [Fact]
    public void AfterKillMinus9OfTwoThreadsEveryAcknowledgedPutOfEachIsPresent() => WithChildAndPool((child, file) =>
    {
        const ulong Seed = 0xC0FFEE;
        var random = new Random(4321);
        long[] next = [0, 0];
        long totalAcked = 0;
        int rounds = TxKnobs.KillRounds, inFlightApplied = 0;
        Dictionary<string, byte[]>[] models = [new(), new()];
        for (int round = 0; round < rounds; round++)
        {
            long[] acked = RunAndKillTwo(child, file, next, Seed, random.Next(0, 200));
            using PersistentHashTable store = PersistentHashTable.OpenFile(file);
            Dictionary<string, byte[]> all = Contents(store);
            for (int t = 0; t < 2; t++)
            {
                Assert.True(acked[t] >= next[t], $"round {round}, thread {t}: acknowledged {acked[t]} before starting at {next[t]}");
                totalAcked += acked[t] - next[t];
                for (long i = next[t]; i < acked[t]; i++)
                {
                    StressOps.Apply(models[t], Seed, i, t);
                }
                string prefix = Convert.ToHexString(Encoding.ASCII.GetBytes($"k{t}y-"));
                var actual = all.Where(p => p.Key.StartsWith(prefix, StringComparison.Ordinal)).ToDictionary();
                if (Same(actual, models[t]))
                {
                    next[t] = acked[t];
                }
                else
                {
                    StressOps.Apply(models[t], Seed, acked[t], t);  // the operation in flight may have committed
                    Assert.True(Same(actual, models[t]), $"round {round}, thread {t}: after {acked[t]} acknowledged operations the store holds {actual.Count} of its entries, matching neither {acked[t]} nor {acked[t] + 1} operations");
                    next[t] = acked[t] + 1;
                    inFlightApplied++;
                }
            }
            Assert.Equal(models[0].Count + models[1].Count, all.Count);
        }
        output.WriteLine($"{rounds} rounds, {totalAcked} acknowledged operations on two threads, {inFlightApplied} times the operation in flight had committed");
        Assert.True(totalAcked >= rounds, "the child made progress");
    });

    private const string FileVariable = "DIRECTPMEM_KV_FILE";
    private const string FirstVariable = "DIRECTPMEM_KV_FIRST";
    private const string SeedVariable = "DIRECTPMEM_KV_SEED";
    private static readonly Lock s_reportGate = new();

    /// <summary>
    /// The kill -9 child: opens the store in the file its parent names (creating it when the file does not exist),
    /// reports "ready", then applies <see cref="StressOps"/> from the first operation(s) on, reporting "ack N" (one
    /// thread) or "ack T N" (two threads, T = 0 or 1, each on its own keys) once operation N is durable, until killed.
    /// Two threads share buckets and reuse each other's freed entries, so their transactions touch each other's bytes.
    /// </summary>
    [Fact(Explicit = true)]
    public void StressChild()
    {
        ChildProcess.RequireChild();
        string file = Environment.GetEnvironmentVariable(FileVariable) ?? throw new InvalidOperationException($"{FileVariable} is not set");
        long[] firsts = [.. Environment.GetEnvironmentVariable(FirstVariable)!.Split(',').Select(f => long.Parse(f, CultureInfo.InvariantCulture))];
        ulong seed = ulong.Parse(Environment.GetEnvironmentVariable(SeedVariable)!, CultureInfo.InvariantCulture);
        using PersistentHashTable store = File.Exists(file) ? PersistentHashTable.OpenFile(file) : PersistentHashTable.CreateFile(file, 8L << 20, buckets: 32);
        ChildProcess.Report($"ready {store.Recovery}");
        if (firsts.Length == 1)
        {
            Stress(store, seed, firsts[0], -1);
            return;
        }
        Thread[] threads = [new(() => Stress(store, seed, firsts[0], 0)), new(() => Stress(store, seed, firsts[1], 1))];
        foreach (Thread thread in threads)
        {
            thread.Start();
        }
        foreach (Thread thread in threads)
        {
            thread.Join();
        }
    }

    private static void Stress(PersistentHashTable store, ulong seed, long first, int thread)
    {
        for (long i = first; ; i++)
        {
            (byte[] key, byte[]? value) = StressOps.Op(seed, i, thread);
            if (value is null)
            {
                store.Delete(key);
            }
            else
            {
                store.Put(key, value);
            }
            // One writer at a time: a report line is appended by opening the file at its end, and two threads
            // appending at once could overwrite each other's line (the parent would then count fewer acknowledgements).
            lock (s_reportGate)
            {
                ChildProcess.Report(thread < 0 ? Invariant(i, "ack {0}") : Invariant(i, "ack " + thread.ToString(CultureInfo.InvariantCulture) + " {0}"));
            }
        }
    }

    private static string Invariant(long value, string format) => string.Format(CultureInfo.InvariantCulture, format, value);

    /// <summary>Runs <paramref name="test"/> with a pool file path in a fresh temporary directory.</summary>
    private static void WithChildAndPool(Action<string, string> test)
    {
        string dir = Directory.CreateTempSubdirectory("directpmem-kv-").FullName;
        try
        {
            test(nameof(StressChild), Path.Combine(dir, "kv.pool"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Runs the two-thread child from <paramref name="first"/>; returns, per thread, how many of its operations were acknowledged (counting from 0).</summary>
    private static long[] RunAndKillTwo(string child, string file, long[] first, ulong seed, int millis)
    {
        long[] acked = [first[0], first[1]];
        foreach (string ack in RunAndKillChild(child, file, Invariant(first[0]) + "," + Invariant(first[1]), seed, millis))
        {
            // only "ack T N" lines in order count
            string[] parts = ack.Split(' ');
            if (parts.Length == 3 && parts[0] == "ack" && int.TryParse(parts[1], out int t) && t is 0 or 1
                && long.TryParse(parts[2], out long n) && n == acked[t])
            {
                acked[t] = n + 1;
            }
        }
        return acked;
    }

    private static string Invariant(long value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>Runs the single-thread child from <paramref name="first"/>; returns the last acknowledged operation.</summary>
    private static long RunAndKill(string child, string file, long first, ulong seed, int millis)
    {
        long lastAck = first - 1;
        foreach (string ack in RunAndKillChild(child, file, Invariant(first), seed, millis))
        {
            // only "ack N" lines in order count
            if (ack.StartsWith("ack ", StringComparison.Ordinal) && long.TryParse(ack.AsSpan(4), out long n) && n == lastAck + 1)
            {
                lastAck = n;
            }
        }
        return lastAck;
    }

    /// <summary>
    /// Starts the child, lets it run <paramref name="millis"/> ms after its first acknowledgement
    /// (a loaded machine can take a while to get it going), kills it with SIGKILL and returns the
    /// complete lines it reported after "ready" (a line the kill cut is left out).
    /// </summary>
    private static string[] RunAndKillChild(string child, string file, string first, ulong seed, int millis)
    {
        string report = ChildProcess.NewReportPath();
        try
        {
            ChildProcess.Started started = ChildProcess.Start(typeof(KeyValueTests), child, report,
                (FileVariable, file), (FirstVariable, first), (SeedVariable, seed.ToString(CultureInfo.InvariantCulture)));
            using Process process = started.Process;
            var watch = Stopwatch.StartNew();
            while (ChildProcess.ReadReport(report).Length < 2 && !process.HasExited && watch.Elapsed < TestTime.Limit(TimeSpan.FromMinutes(2)))
            {
                Thread.Sleep(1);
            }
            string[] begun = ChildProcess.ReadReport(report);
            if (begun.Length < 2 || !begun[0].StartsWith("ready", StringComparison.Ordinal))
            {
                TestTime.KillAndWait(process);
                throw new InvalidOperationException($"the child did not start acknowledging within {watch.Elapsed}: [{string.Join("; ", begun.Take(3))}]\n{started.Output.Result}");
            }
            Thread.Sleep(millis);
            process.Kill();                      // SIGKILL on Linux
            process.WaitForExit();
            Assert.Equal(137, process.ExitCode); // 128 + SIGKILL: it did not stop on its own
            return ChildProcess.ReadReport(report).Skip(1).ToArray();
        }
        finally
        {
            File.Delete(report);
        }
    }
}
