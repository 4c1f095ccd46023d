using System.Buffers.Binary;
using System.Diagnostics;
using DirectPmem.Mapping;
using Xunit;

namespace DirectPmem.Storage.Tests;

/// <summary>Real threads appending at once: every record is present exactly once, in each thread's order, at the LSN its append returned.</summary>
public sealed class ConcurrencyTests(ITestOutputHelper output)
{
    private const int TotalRecords = 1_000_000;

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(8)]
    public void ThreadsAppendAMillionRecordsEachExactlyOnceInPerThreadOrder(int threads)
    {
        int perThread = TotalRecords / threads;
        const int payloadLength = 12; // thread u32, sequence u32, 4 filler bytes: a 32-byte frame
        long logLength = PmemLog.LengthFor(((long)TotalRecords * PmemLog.FrameLength(payloadLength) + 4095) / 4096 * 4096);
        // Cache-line mode on memory: real flush instructions and fences, as on persistent memory.
        using DaxMapping mapping = DaxMapping.CreateAnonymous(logLength + 64 * 1024, new DaxMappingOptions { ForceCacheLineGranularity = true });
        var (pool, log) = LogTests.NewLog(mapping, logLength);
        long[][] lsns = new long[threads][];
        using var start = new Barrier(threads);
        var stopwatch = new Stopwatch();
        Thread[] workers = new Thread[threads];
        Exception? failure = null;
        for (int t = 0; t < threads; t++)
        {
            int id = t;
            lsns[id] = new long[perThread];
            workers[t] = new Thread(() =>
            {
                try
                {
                    Span<byte> payload = stackalloc byte[payloadLength];
                    start.SignalAndWait();
                    for (int i = 0; i < perThread; i++)
                    {
                        BinaryPrimitives.WriteInt32LittleEndian(payload, id);
                        BinaryPrimitives.WriteInt32LittleEndian(payload[4..], i);
                        BinaryPrimitives.WriteInt32LittleEndian(payload[8..], id ^ i);
                        lsns[id][i] = log.Append(payload);
                    }
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref failure, e, null);
                }
            });
            workers[t].Start();
        }
        stopwatch.Start();
        foreach (Thread worker in workers)
        {
            worker.Join();
        }
        stopwatch.Stop();
        Assert.Null(failure);
        output.WriteLine($"{threads} threads, {perThread * threads} appends in {stopwatch.ElapsedMilliseconds} ms");
        Knobs.Record($"concurrency: {threads} threads, {perThread * threads} appends in {stopwatch.ElapsedMilliseconds} ms");

        // Reopen as after a crash (the pool is not closed) and check every record.
        var recovered = PmemLog.Open(PmemPool.Open(mapping, LogTests.Layout, new PoolOpenOptions { ReadOnly = true }), log.Offset);
        Assert.Equal(log.Tail, recovered.Tail);
        int[] next = new int[threads];
        long count = 0;
        foreach (LogRecord record in recovered.ReadAll())
        {
            int id = BinaryPrimitives.ReadInt32LittleEndian(record.Payload);
            int seq = BinaryPrimitives.ReadInt32LittleEndian(record.Payload[4..]);
            Assert.InRange(id, 0, threads - 1);
            if (seq != next[id])
            {
                Assert.Fail($"thread {id}: record {seq} at LSN {record.Lsn} where {next[id]} was due");
            }
            if (lsns[id][seq] != record.Lsn)
            {
                Assert.Fail($"thread {id} record {seq}: append returned LSN {lsns[id][seq]}, found at {record.Lsn}");
            }
            Assert.Equal(id ^ seq, BinaryPrimitives.ReadInt32LittleEndian(record.Payload[8..]));
            next[id]++;
            count++;
        }
        Assert.Equal((long)perThread * threads, count);
        Assert.All(next, n => Assert.Equal(perThread, n));
        pool.Dispose();
    }
}
