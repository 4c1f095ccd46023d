using System.Buffers.Binary;
using System.Collections.Concurrent;
using DirectPmem.Storage.Transactions;
using Xunit;

namespace DirectPmem.Storage.Tests;

/// <summary>
/// Storage operations racing the pool's Dispose: appends (single and batched), reads, readers,
/// truncation and root updates each complete or end with the pool's
/// <see cref="ObjectDisposedException"/>, never a misleading error (a full log, "an earlier
/// append failed") and never a crash; after reopening, every acknowledged record is there.
/// DIRECTPMEM_STORAGE_DISPOSE_ROUNDS sets the rounds (default 40, 400 with DIRECTPMEM_STORAGE_LONG=1).
/// </summary>
public sealed class DisposeRaceTests : IDisposable
{
    private const string Layout = "dispose-race";
    private const long LogLength = 2L << 20;
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static int Rounds => Knobs.Get("DIRECTPMEM_STORAGE_DISPOSE_ROUNDS", 40, 400);

    [Fact]
    public void EveryLogOperationRacingThePoolsDisposeCompletesOrThrowsObjectDisposedNamingThePool()
    {
        int rounds = Rounds;
        var failures = new ConcurrentQueue<string>();
        var outcomes = new ConcurrentDictionary<string, int>();
        for (int round = 0; round < rounds && failures.IsEmpty; round++)
        {
            string path = _dir.File($"pool{round}");
            PmemPool pool = TestPools.CreateFile(path, 4L << 20, Layout);
            PmemLog log = PmemLog.Create(pool, pool.DataOffset, LogLength);
            pool.SetRoot(log.Offset);
            var acknowledged = new ConcurrentDictionary<long, (int Worker, int Sequence, int Length)>();
            var truncate = new Lock();
            using var started = new CountdownEvent(4);

            void Worker(int id, Action<int> step)
            {
                started.Signal();
                for (int n = 0; ; n++)
                {
                    try
                    {
                        step(n);
                    }
                    catch (ObjectDisposedException e)
                    {
                        if (e.ObjectName != nameof(PmemPool))
                            failures.Enqueue($"round {round}, worker {id}: ObjectDisposedException names '{e.ObjectName}', not the pool: {e}");
                        outcomes.AddOrUpdate($"worker {id}: ObjectDisposedException", 1, (_, c) => c + 1);
                        return;
                    }
                    catch (Exception e)
                    {
                        failures.Enqueue($"round {round}, worker {id}, step {n}: {e}");
                        return;
                    }
                }
            }

            // Keeps the log far from full, so that a LogFullException can only be a misreport.
            void MakeRoom()
            {
                if (log.FreeBytes < LogLength / 2)
                {
                    lock (truncate)
                        log.Truncate(log.Tail);
                }
            }

            Thread[] threads =
            [
                new(() => Worker(0, n =>
                {
                    MakeRoom();
                    int length = 1 + (n * 37 % 600);
                    acknowledged[log.Append(Payload(0, n, length))] = (0, n, length);
                })),
                new(() =>
                {
                    using var batch = new LogBatch();
                    Worker(1, n =>
                    {
                        MakeRoom();
                        batch.Clear();
                        batch.Add(Payload(1, n, 24));
                        batch.Add(Payload(1, n + 1_000_000, 300));
                        long first = log.Append(batch);
                        acknowledged[first + batch.GetRecordOffset(0)] = (1, n, 24);
                        acknowledged[first + batch.GetRecordOffset(1)] = (1, n + 1_000_000, 300);
                    });
                }),
                new(() =>
                {
                    byte[] buffer = new byte[1024];
                    Worker(2, n =>
                    {
                        long tail = log.Tail;
                        foreach (LogRecord record in log.ReadAll())
                            _ = record.Payload.Length;
                        if (tail > log.Head && acknowledged.Keys.Where(l => l >= log.Head).DefaultIfEmpty(-1).Max() is long lsn and >= 0)
                        {
                            try
                            {
                                _ = log.GetRecordLength(lsn);
                                _ = log.Read(lsn, buffer);
                            }
                            catch (ArgumentOutOfRangeException) when (lsn < log.Head)
                            {
                                // Truncated between the choice and the read: the documented refusal.
                            }
                        }
                    });
                }),
                new(() => Worker(3, n => pool.SetRoot(n % 2 == 0 ? log.Offset : 0))),
            ];
            DisposeWhileRunning(pool, threads, started, round);

            // Nothing acknowledged is lost: every record at or after the durable head reads back.
            using PmemPool reopened = Reopen(path);
            PmemLog recovered = PmemLog.Open(reopened, log.Offset);
            byte[] back = new byte[1024];
            foreach ((long lsn, (int worker, int sequence, int written)) in acknowledged)
            {
                if (lsn < recovered.Head)
                    continue;
                int length = recovered.Read(lsn, back);
                byte[] expected = Payload(worker, sequence, written);
                if (length != expected.Length || !back.AsSpan(0, length).SequenceEqual(expected))
                    failures.Enqueue($"round {round}: the acknowledged record at LSN {lsn} did not survive ({length} bytes read)");
            }
            File.Delete(path);
        }
        Assert.True(failures.IsEmpty, string.Join(Environment.NewLine, failures.Take(5)));
        TestContext.Current.TestOutputHelper?.WriteLine(string.Join(", ", outcomes.Select(o => $"{o.Key}: {o.Value}")));
    }

    [Fact]
    public void HeapTransactionsRacingThePoolsDisposeCommitDurablyOrThrowObjectDisposedAndRollBack()
    {
        const int Workers = 3;
        int rounds = Rounds;
        var failures = new ConcurrentQueue<string>();
        for (int round = 0; round < rounds && failures.IsEmpty; round++)
        {
            string path = _dir.File($"heap{round}");
            PmemPool pool = TestPools.CreateFile(path, 4L << 20, Layout);
            TransactionalHeap heap = pool.CreateTransactionalHeap();
            long[] committed = new long[Workers];
            using var started = new CountdownEvent(Workers);
            Thread[] threads = [.. Enumerable.Range(0, Workers).Select(w => new Thread(() =>
            {
                started.Signal();
                byte[] value = new byte[64];
                try
                {
                    for (long n = 1; ; n++)
                    {
                        using Transaction tx = heap.Begin();
                        BinaryPrimitives.WriteInt64LittleEndian(value, n);
                        value.AsSpan(8).Fill((byte)n);
                        tx.Write(heap.RootOffset + w * 64, value);
                        tx.Commit();
                        Volatile.Write(ref committed[w], n);
                    }
                }
                catch (ObjectDisposedException e) when (e.ObjectName == nameof(PmemPool))
                {
                }
                catch (Exception e)
                {
                    failures.Enqueue($"round {round}, worker {w}: {e}");
                }
            }))];
            DisposeWhileRunning(pool, threads, started, round);

            // Every commit that returned survived; the one in flight was rolled back whole.
            using PmemPool reopened = Reopen(path);
            using TransactionalHeap recovered = reopened.OpenTransactionalHeap();
            for (int w = 0; w < Workers; w++)
            {
                ReadOnlySpan<byte> slot = reopened.Mapping.GetReadOnlySpan(recovered.RootOffset + w * 64, 64);
                long n = BinaryPrimitives.ReadInt64LittleEndian(slot);
                if (n != committed[w] || (n > 0 && slot[8..].IndexOfAnyExcept((byte)n) >= 0))
                    failures.Enqueue($"round {round}, worker {w}: the heap holds {n} (torn: {slot[8..].IndexOfAnyExcept((byte)n) >= 0}), the last commit that returned wrote {committed[w]}");
            }
            File.Delete(path);
        }
        Assert.True(failures.IsEmpty, string.Join(Environment.NewLine, failures.Take(5)));
    }

    [Fact]
    public void TheLogRefusesUseAfterThePoolIsDisposedNamingThePool()
    {
        using var mapping = DirectPmem.Mapping.DaxMapping.CreateAnonymous(4L << 20);
        PmemPool pool = TestPools.Create(mapping, Layout);
        PmemLog log = PmemLog.Create(pool, pool.DataOffset, LogLength);
        long lsn = log.Append([1, 2, 3]);
        pool.Dispose(); // the mapping is the caller's and stays mapped: the log still refuses

        byte[] buffer = new byte[16];
        Assert.Equal(nameof(PmemPool), Assert.Throws<ObjectDisposedException>(() => log.Append([4])).ObjectName);
        Assert.Equal(nameof(PmemPool), Assert.Throws<ObjectDisposedException>(() => log.Read(lsn, buffer)).ObjectName);
        Assert.Equal(nameof(PmemPool), Assert.Throws<ObjectDisposedException>(() => log.GetRecordLength(lsn)).ObjectName);
        Assert.Equal(nameof(PmemPool), Assert.Throws<ObjectDisposedException>(() => log.ReadAll()).ObjectName);
        Assert.Equal(nameof(PmemPool), Assert.Throws<ObjectDisposedException>(() => log.ReadFrom(lsn)).ObjectName);
        Assert.Equal(nameof(PmemPool), Assert.Throws<ObjectDisposedException>(() => log.Truncate(log.Tail)).ObjectName);
        Assert.Equal(nameof(PmemPool), Assert.Throws<ObjectDisposedException>(() => pool.SetRoot(0)).ObjectName);
        using var batch = new LogBatch();
        batch.Add([5]);
        Assert.Equal(nameof(PmemPool), Assert.Throws<ObjectDisposedException>(() => log.Append(batch)).ObjectName);
    }

    [Fact]
    public void HeapsMadeInAPoolRefuseUseAfterThePoolIsDisposedNamingThePool()
    {
        using var mapping = DirectPmem.Mapping.DaxMapping.CreateAnonymous(4L << 20);
        PmemPool pool = TestPools.Create(mapping, Layout);
        using TransactionalHeap heap = PoolTransactions.CreateTransactionalHeap(pool);
        using (Transaction tx = heap.Begin())
            tx.Commit();
        pool.Dispose(); // the mapping is the caller's and stays mapped: the heap still refuses

        Assert.Equal(nameof(PmemPool), Assert.Throws<ObjectDisposedException>(() => { heap.Begin(); }).ObjectName);
        Assert.Equal(nameof(PmemPool), Assert.Throws<ObjectDisposedException>(() => PoolTransactions.OpenTransactionalHeap(pool)).ObjectName);
        Assert.Equal(nameof(PmemPool), Assert.Throws<ObjectDisposedException>(() => PoolTransactions.CreateTransactionalHeap(pool)).ObjectName);
        Assert.Equal(nameof(PmemPool), Assert.Throws<ObjectDisposedException>(() => PmemLog.Create(pool, pool.DataOffset, LogLength)).ObjectName);
        Assert.Equal(nameof(PmemPool), Assert.Throws<ObjectDisposedException>(() => PmemLog.Open(pool, pool.DataOffset)).ObjectName);
    }

    // Starts the workers, lets them run a moment that varies by round, disposes the pool under them and waits for them to stop.
    private static void DisposeWhileRunning(PmemPool pool, Thread[] threads, CountdownEvent started, int round)
    {
        foreach (Thread thread in threads)
            thread.Start();
        started.Wait(TestContext.Current.CancellationToken);
        Thread.Sleep(round % 4);
        pool.Dispose();
        foreach (Thread thread in threads)
            thread.Join();
    }

    // A test in another class that starts a child process forks while this file is open: until the
    // child execs (O_CLOEXEC), it shares the open file description and so the pool's flock.
    private static PmemPool Reopen(string path)
    {
        var since = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return PmemPool.OpenFile(path, Layout);
            }
            catch (PmemInUseException) when (since.Elapsed < TestTime.Limit(TimeSpan.FromSeconds(30)))
            {
                Thread.Sleep(10);
            }
        }
    }

    private static byte[] Payload(int worker, int sequence, int length)
    {
        byte[] bytes = new byte[length];
        for (int i = 0; i < length; i++)
            bytes[i] = (byte)(worker * 31 + sequence * 7 + i);
        return bytes;
    }
}
