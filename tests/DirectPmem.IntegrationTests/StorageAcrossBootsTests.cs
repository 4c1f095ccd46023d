using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Storage.Transactions;
using DirectPmem.Storage;

namespace DirectPmem.IntegrationTests;

/// <summary>
/// DirectPmem.Storage on the kernel's device-DAX driver, across a power-off: tests/devdax-vm/run.sh
/// boots the guest twice on one NVDIMM file. Boot 1 creates a pool and a log on /dev/dax0.0 and
/// appends (some records from concurrent appenders), creates a pool in a labelled range, commits
/// transactions in a third pool and leaves a child process inside one more transaction, whose
/// changes are already on the device, when the guest powers off (<c>poweroff -f</c> does not end
/// processes). Boot 2 recovers all of it: every acknowledged record present, intact and in order,
/// the pools' headers valid, the committed transactions present and the interrupted one rolled back.
/// Every byte written derives from the run's random id, so nothing left by another run can pass.
/// What boot 1 learned (LSNs, the pools' UUIDs) goes to the share, which survives the power-off.
/// </summary>
[Collection(DeviceTestGroup.Name)]
public sealed class StorageAcrossBootsTests(ITestOutputHelper output)
{
    private const long TwoMiB = 2L << 20;
    private const string LogLayout = "it-pool-log";
    private const long LogPoolLength = 16L << 20;
    private const long LogLength = 8L << 20;
    private const int SingleRecords = 300;
    private const int Appenders = 4;
    private const int RecordsPerAppender = 250;
    private const int BatchRecords = 20;
    private const string RangePoolName = "it-pool-range";
    private const string RangeLayout = "it-pool-range";
    private const string TxRangeName = "it-tx";
    private const string TxLayout = "it-tx";
    private const int TxObjects = 3;
    private const string ChildVariable = "DIRECTPMEM_IT_TX_CHILD";

    /// <summary>
    /// The pool and log live in a raw window of the device, as an application without the range
    /// allocator would put them: [5/8 of the device, +16 MiB). The other tests keep out of it
    /// (labelled ranges are allocated from the low end; DeviceDaxTests writes at 1/2 and 3/4).
    /// </summary>
    private static long LogPoolOffset(DaxDevice device) => RangeValidator.AlignDown(device.Size * 5 / 8, TwoMiB);

    [Fact]
    public async Task First_boot_creates_a_pool_and_a_log_on_the_device_and_appends_from_concurrent_appenders()
    {
        string runId = Require(phase: 1, out string share);
        using DaxDevice device = DaxDevice.Open(IntegrationEnvironment.RequireDevice());
        long offset = LogPoolOffset(device);
        var acknowledged = new List<(long Lsn, string Key)>();
        Guid uuid;
        using (DaxMapping map = device.Map(new DaxMappingOptions { Offset = offset, Length = LogPoolLength }))
        using (PmemPool pool = PmemPool.Create(map, LogLayout, new PoolCreateOptions { Overwrite = true }))
        {
            uuid = pool.Uuid;
            PmemLog log = PmemLog.Create(pool, pool.DataOffset, LogLength);
            pool.SetRoot(pool.DataOffset);
            output.WriteLine($"boot 1: pool {uuid} at device offset 0x{offset:x} (+{LogPoolLength}), log of capacity {log.Capacity} at {log.Offset}");

            for (int i = 0; i < SingleRecords / 2; i++)
            {
                acknowledged.Add((log.Append(Payload(runId, "single", i)), Key("single", i)));
            }
            using (var batch = new LogBatch())
            {
                for (int i = 0; i < BatchRecords; i++)
                {
                    batch.Add(Payload(runId, "batch", i));
                }
                long first = log.Append(batch);
                for (int i = 0; i < BatchRecords; i++)
                {
                    acknowledged.Add((first + batch.GetRecordOffset(i), Key("batch", i)));
                }
            }
            // Four appenders on their own threads, released together: their appends interleave and share publishes.
            List<(long, string)>[] perThread;
            using (var start = new Barrier(Appenders))
            {
                perThread = await Task.WhenAll(Enumerable.Range(0, Appenders).Select(t => Task.Factory.StartNew(() =>
                {
                    string what = "thread" + t.ToString(CultureInfo.InvariantCulture);
                    var mine = new List<(long, string)>(RecordsPerAppender);
                    start.SignalAndWait();
                    for (int i = 0; i < RecordsPerAppender; i++)
                    {
                        mine.Add((log.Append(Payload(runId, what, i)), Key(what, i)));
                    }
                    return mine;
                }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)));
            }
            foreach (List<(long, string)> mine in perThread)
            {
                acknowledged.AddRange(mine);
            }
            for (int i = SingleRecords / 2; i < SingleRecords; i++)
            {
                acknowledged.Add((log.Append(Payload(runId, "single", i)), Key("single", i)));
            }
            output.WriteLine($"boot 1: {acknowledged.Count} records acknowledged, tail {log.Tail}, head {log.Head}");
            Assert.Equal(SingleRecords + BatchRecords + Appenders * RecordsPerAppender, acknowledged.Count);
        }
        // Dispose marked the pool clean (after a deep flush of its headers).
        File.WriteAllLines(Path.Combine(share, "log-acknowledged.txt"),
            new[] { uuid.ToString() }.Concat(acknowledged.Select(a => string.Create(CultureInfo.InvariantCulture, $"{a.Lsn} {a.Key}"))));
    }

    [Fact]
    public void Second_boot_recovers_the_pool_and_every_acknowledged_log_record_intact_and_in_order()
    {
        string runId = Require(phase: 2, out string share);
        string[] lines = File.ReadAllLines(Path.Combine(share, "log-acknowledged.txt"));
        Guid uuid = Guid.Parse(lines[0]);
        var acknowledged = lines.Skip(1).Select(line =>
        {
            string[] parts = line.Split(' ');
            return (Lsn: long.Parse(parts[0], CultureInfo.InvariantCulture), Key: parts[1]);
        }).ToList();
        Assert.Equal(SingleRecords + BatchRecords + Appenders * RecordsPerAppender, acknowledged.Count);

        using DaxDevice device = DaxDevice.Open(IntegrationEnvironment.RequireDevice());
        using DaxMapping map = device.Map(new DaxMappingOptions { Offset = LogPoolOffset(device), Length = LogPoolLength });
        using PmemPool pool = PmemPool.Open(map, LogLayout);
        output.WriteLine($"boot 2: pool {pool.Uuid}, clean {pool.WasCleanlyClosed}, repair {pool.HeaderRepair}, dirty-shutdown count {pool.DirtyShutdownCount?.ToString(CultureInfo.InvariantCulture) ?? "none"}");
        Assert.Equal(uuid, pool.Uuid);
        Assert.Equal(LogLayout, pool.Layout);
        Assert.Equal(LogPoolLength, pool.Size);
        Assert.True(pool.WasCleanlyClosed, "the pool was disposed in boot 1 and must be reported clean");
        Assert.Equal(PoolHeaderRepair.None, pool.HeaderRepair);
        Assert.False(pool.IsReadOnly);

        PmemLog log = PmemLog.Open(pool, pool.RootOffset);
        var byLsn = acknowledged.OrderBy(a => a.Lsn).ToList();
        // Every record is there, in LSN order, nothing more: the records between head and tail are
        // exactly the acknowledged ones.
        int index = 0;
        foreach (LogRecord record in log.ReadAll())
        {
            Assert.True(index < byLsn.Count, $"a record at LSN {record.Lsn} that boot 1 never acknowledged");
            (long lsn, string key) = byLsn[index];
            Assert.Equal(lsn, record.Lsn);
            Assert.True(Payload(runId, key).AsSpan().SequenceEqual(record.Payload), $"the record at LSN {lsn} ({key}) differs from what was appended");
            index++;
        }
        Assert.Equal(byLsn.Count, index);
        Assert.Equal(byLsn[^1].Lsn + PmemLog.FrameLength(Payload(runId, byLsn[^1].Key).Length), log.Tail);

        // Each appender's records are in the order it appended them; read by LSN too.
        foreach (IGrouping<string, (long Lsn, string Key)> group in acknowledged.GroupBy(a => a.Key.Split('-')[0]))
        {
            long[] lsns = group.Select(a => a.Lsn).ToArray();
            Assert.True(lsns.Zip(lsns.Skip(1)).All(pair => pair.First < pair.Second), $"the records of {group.Key} are out of order");
        }
        (long someLsn, string someKey) = acknowledged[acknowledged.Count / 2];
        byte[] buffer = new byte[log.GetRecordLength(someLsn)];
        Assert.Equal(buffer.Length, log.Read(someLsn, buffer));
        Assert.Equal(Payload(runId, someKey), buffer);
        output.WriteLine($"boot 2: {index} records read back intact from LSN {log.Head} to {log.Tail}");
    }

    [Fact]
    public void First_boot_creates_a_pool_in_a_labelled_range()
    {
        string runId = Require(phase: 1, out string share);
        using DaxDevice device = DaxDevice.Open(IntegrationEnvironment.RequireDevice());
        using DaxRangeAllocator allocator = RangeAllocationTests.OpenOrFormat(device, output);
        FreeStale(allocator, RangePoolName);
        DaxAllocation range = allocator.Allocate(RangePoolName, 4L << 20);
        byte[] record = PersistenceAcrossBootsTests.Record(runId, "range-pool");
        Guid uuid;
        using (PmemPool pool = PmemPool.Create(allocator.Map(RangePoolName), RangeLayout, new PoolCreateOptions { Overwrite = true }, ownsMapping: true))
        {
            uuid = pool.Uuid;
            pool.Mapping.Write(record, pool.DataOffset + 4096);
            pool.SetRoot(pool.DataOffset + 4096);
            output.WriteLine($"boot 1: pool {uuid} in {range}, root {pool.RootOffset}, mapping granularity {pool.Mapping.Granularity}");
        }
        File.WriteAllText(Path.Combine(share, "range-pool.txt"), uuid.ToString());
    }

    [Fact]
    public void Second_boot_finds_the_labelled_range_and_reopens_its_pool_clean_with_its_data()
    {
        string runId = Require(phase: 2, out string share);
        Guid uuid = Guid.Parse(File.ReadAllText(Path.Combine(share, "range-pool.txt")).Trim());
        using DaxDevice device = DaxDevice.Open(IntegrationEnvironment.RequireDevice());
        using DaxRangeAllocator allocator = DaxRangeAllocator.Open(device);
        DaxAllocation range = allocator.Get(RangePoolName);
        using PmemPool pool = PmemPool.Open(allocator.Map(RangePoolName), RangeLayout, ownsMapping: true);
        output.WriteLine($"boot 2: pool {pool.Uuid} in {range}, clean {pool.WasCleanlyClosed}, repair {pool.HeaderRepair}");
        Assert.Equal(uuid, pool.Uuid);
        Assert.Equal(range.Length, pool.Size);
        Assert.True(pool.WasCleanlyClosed);
        Assert.Equal(PoolHeaderRepair.None, pool.HeaderRepair);
        byte[] expected = PersistenceAcrossBootsTests.Record(runId, "range-pool");
        Assert.Equal(pool.DataOffset + 4096, pool.RootOffset);
        Assert.Equal(expected, pool.Mapping.GetReadOnlySpan(pool.RootOffset, expected.Length).ToArray());
    }

    [Fact]
    public void First_boot_commits_transactions_and_leaves_one_inside_a_child_when_the_guest_powers_off()
    {
        string runId = Require(phase: 1, out string share);
        using DaxDevice device = DaxDevice.Open(IntegrationEnvironment.RequireDevice());
        DaxAllocation range;
        long rootOffset;
        using (DaxRangeAllocator allocator = RangeAllocationTests.OpenOrFormat(device, output))
        {
            FreeStale(allocator, TxRangeName);
            range = allocator.Allocate(TxRangeName, 4L << 20);
            using PmemPool pool = PmemPool.Create(allocator.Map(TxRangeName), TxLayout, new PoolCreateOptions { Overwrite = true }, ownsMapping: true);
            using TransactionalHeap heap = pool.CreateTransactionalHeap(new TransactionalHeapOptions { LaneCount = 2, ObjectSize = 256, ObjectCount = 64 });
            rootOffset = heap.RootOffset;
            using (Transaction tx = heap.Begin())
            {
                tx.Write(heap.RootOffset, Value(runId, "root-committed", 64));
                tx.Commit();
            }
            using (Transaction tx = heap.Begin())
            {
                for (int i = 0; i < TxObjects; i++)
                {
                    long obj = tx.Allocate();
                    Value(runId, "object-committed-" + i, heap.ObjectSize).CopyTo(tx.GetSpan(obj, heap.ObjectSize));
                    tx.GetRef<long>(heap.RootOffset + 64 + 8 * i) = obj;
                }
                tx.Commit();
            }
            output.WriteLine($"boot 1: two transactions committed in {range}; {heap.FreeObjectCount} of {heap.ObjectCount} objects free");
        }

        // The child opens the pool and heap itself, begins a transaction, modifies and persists the
        // declared ranges, reports through the marker and waits for the power-off.
        string marker = Path.Combine(share, "tx-child.marker");
        string log = Path.Combine(share, "tx-child.log");
        File.Delete(marker);
        var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        foreach (string arg in new[] { "-c", "exec \"$0\" \"$@\" >\"$DIRECTPMEM_IT_TX_LOG\" 2>&1", DotnetHost.Path,
            typeof(StorageAcrossBootsTests).Assembly.Location, "-method", typeof(StorageAcrossBootsTests).FullName + "." + nameof(Child_holds_a_transaction_open_until_the_power_off),
            "-explicit", "only", "-noLogo", "-noColor" })
        {
            start.ArgumentList.Add(arg);
        }
        start.Environment[ChildVariable] = "1";
        start.Environment["DIRECTPMEM_IT_TX_LOG"] = log;
        start.Environment["DIRECTPMEM_IT_TX_MARKER"] = marker;
        start.Environment["DIRECTPMEM_IT_TX_OFFSET"] = range.Offset.ToString(CultureInfo.InvariantCulture);
        start.Environment["DIRECTPMEM_IT_TX_LENGTH"] = range.Length.ToString(CultureInfo.InvariantCulture);
        using Process child = Process.Start(start) ?? throw new InvalidOperationException("could not start the child");
        var clock = Stopwatch.StartNew();
        while (!File.Exists(marker) && !child.HasExited && clock.Elapsed < TestTime.Limit(TimeSpan.FromMinutes(4)))
        {
            Thread.Sleep(200);
        }
        string ChildLog() => File.Exists(log) ? File.ReadAllText(log) : "(no log)";
        Assert.True(File.Exists(marker), $"the child wrote no marker {TestTime.Describe(TestTime.Limit(TimeSpan.FromMinutes(4)))} (exited: {child.HasExited}):\n{ChildLog()}");
        Assert.False(child.HasExited, $"the child must still be inside its transaction:\n{ChildLog()}");
        output.WriteLine($"boot 1: child {child.Id} is inside its transaction after {clock.Elapsed.TotalSeconds:F0} s: {File.ReadAllText(marker).Trim()}");

        // Its changes are on the device already: only the undo log can bring the old values back.
        using DaxMapping view = device.Map(new DaxMappingOptions { Offset = range.Offset, Length = range.Length, ReadOnly = true });
        Assert.Equal(Value(runId, "root-interrupted", 64), view.GetReadOnlySpan(rootOffset, 64).ToArray());
    }

    /// <summary>The child of the test above; it runs only when its parent starts it, and never returns.</summary>
    [Fact(Explicit = true)]
    public void Child_holds_a_transaction_open_until_the_power_off()
    {
        if (Environment.GetEnvironmentVariable(ChildVariable) != "1")
        {
            Assert.Skip("runs only in the child process started by its parent test in boot 1");
        }
        string runId = Require(phase: 1, out _);
        long offset = long.Parse(Environment.GetEnvironmentVariable("DIRECTPMEM_IT_TX_OFFSET")!, CultureInfo.InvariantCulture);
        long length = long.Parse(Environment.GetEnvironmentVariable("DIRECTPMEM_IT_TX_LENGTH")!, CultureInfo.InvariantCulture);
        using DaxDevice device = DaxDevice.Open(IntegrationEnvironment.RequireDevice());
        // A window of the device, not the allocator: the child holds no label lock while it waits.
        using PmemPool pool = PmemPool.Open(device.Map(new DaxMappingOptions { Offset = offset, Length = length }), TxLayout, ownsMapping: true);
        using TransactionalHeap heap = pool.OpenTransactionalHeap();
        using Transaction tx = heap.Begin();
        tx.Write(heap.RootOffset, Value(runId, "root-interrupted", 64));
        long first = BinaryPrimitives.ReadInt64LittleEndian(pool.Mapping.GetReadOnlySpan(heap.RootOffset + 64, 8));
        tx.Write(first, Value(runId, "object-interrupted", heap.ObjectSize));
        long extra = tx.Allocate();
        Value(runId, "object-extra", heap.ObjectSize).CopyTo(tx.GetSpan(extra, heap.ObjectSize));
        tx.GetRef<long>(heap.RootOffset + 64 + 8 * TxObjects) = extra;
        // Make the modifications durable, as a crash after the last flush of a commit would leave them.
        pool.Mapping.Persist(heap.RootOffset, 64 + 8 * (TxObjects + 1));
        pool.Mapping.Persist(first, heap.ObjectSize);
        pool.Mapping.Persist(extra, heap.ObjectSize);
        File.WriteAllText(Environment.GetEnvironmentVariable("DIRECTPMEM_IT_TX_MARKER")!,
            $"pid {Environment.ProcessId}, lane {tx.Lane}, {tx.LogBytesUsed} undo bytes, extra object at {extra}\n");
        Thread.Sleep(Timeout.Infinite);
    }

    [Fact]
    public void Second_boot_finds_the_committed_transactions_and_the_interrupted_one_rolled_back()
    {
        string runId = Require(phase: 2, out string share);
        Assert.True(File.Exists(Path.Combine(share, "tx-child.marker")), "boot 1's child never reported being inside its transaction");
        using DaxDevice device = DaxDevice.Open(IntegrationEnvironment.RequireDevice());
        using DaxRangeAllocator allocator = DaxRangeAllocator.Open(device);
        using PmemPool pool = PmemPool.Open(allocator.Map(TxRangeName), TxLayout, ownsMapping: true);
        output.WriteLine($"boot 2: pool clean {pool.WasCleanlyClosed}, needs recovery {pool.NeedsRecovery}");
        Assert.False(pool.WasCleanlyClosed, "the child had the pool open at the power-off");
        Assert.True(pool.NeedsRecovery);
        using TransactionalHeap heap = pool.OpenTransactionalHeap();
        output.WriteLine($"boot 2: recovery {heap.Recovery}");
        Assert.True(heap.Recovery.RolledBack);
        Assert.Equal(1, heap.Recovery.LanesRolledBack);
        Assert.Equal(TxObjects, heap.Recovery.AllocatedObjects);
        Assert.Equal(heap.ObjectCount - TxObjects, heap.FreeObjectCount);

        DaxMapping map = heap.Mapping;
        Assert.Equal(Value(runId, "root-committed", 64), map.GetReadOnlySpan(heap.RootOffset, 64).ToArray());
        for (int i = 0; i < TxObjects; i++)
        {
            long obj = map.GetReadOnlyRef<long>(heap.RootOffset + 64 + 8 * i);
            Assert.True(heap.IsAllocated(obj));
            Assert.Equal(Value(runId, "object-committed-" + i, heap.ObjectSize), map.GetReadOnlySpan(obj, heap.ObjectSize).ToArray());
        }
        Assert.Equal(0, map.GetReadOnlyRef<long>(heap.RootOffset + 64 + 8 * TxObjects));
    }

    private static void FreeStale(DaxRangeAllocator allocator, string name)
    {
        if (allocator.Ranges.Any(r => r.Name == name))
        {
            allocator.Free(name);
        }
    }

    private static string Require(int phase, out string share)
    {
        IntegrationEnvironment.RequireDevice();
        string? runId = IntegrationEnvironment.RunId;
        string? dir = IntegrationEnvironment.ShareDirectory;
        if (IntegrationEnvironment.Phase != phase || runId is null || dir is null)
        {
            Assert.Skip($"runs only in boot {phase} of tests/devdax-vm/run.sh (DIRECTPMEM_VM_PHASE={IntegrationEnvironment.Phase}, share {dir ?? "unset"}).");
        }
        share = dir;
        return runId;
    }

    private static string Key(string what, int index) => what + "-" + index.ToString(CultureInfo.InvariantCulture);

    private static byte[] Payload(string runId, string what, int index) => Payload(runId, Key(what, index));

    /// <summary>A record of 1 to 1500 bytes that only this run and key produce.</summary>
    private static byte[] Payload(string runId, string key)
    {
        byte[] seed = System.Security.Cryptography.SHA256.HashData(Encoding.ASCII.GetBytes(runId + "/" + key));
        var random = new Random(BinaryPrimitives.ReadInt32LittleEndian(seed));
        byte[] payload = new byte[1 + random.Next(1500)];
        random.NextBytes(payload);
        return payload;
    }

    private static byte[] Value(string runId, string what, int length)
    {
        byte[] value = new byte[length];
        byte[] seed = System.Security.Cryptography.SHA256.HashData(Encoding.ASCII.GetBytes(runId + "/" + what));
        new Random(BinaryPrimitives.ReadInt32LittleEndian(seed)).NextBytes(value);
        return value;
    }
}
