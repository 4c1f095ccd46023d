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

    // 12 to 1400 bytes: short frames staged whole and long ones streamed from the caller, mixed.
    private static int MixedLength(int id, int seq) => 12 + (seq * 613 + id * 97) % 1389;

    private static void FillMixed(Span<byte> payload, int id, int seq)
    {
        for (int i = 12; i < payload.Length; i++)
        {
            payload[i] = (byte)(id * 41 + seq * 7 + i);
        }
        BinaryPrimitives.WriteInt32LittleEndian(payload, id);
        BinaryPrimitives.WriteInt32LittleEndian(payload[4..], seq);
        BinaryPrimitives.WriteInt32LittleEndian(payload[8..], payload.Length);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void ThreadsAppendingShortAndLongRecordsKeepEveryByteAndPerThreadOrder(int threads)
    {
        const int perThread = 40_000;
        long ring = 0;
        for (int id = 0; id < threads; id++)
        {
            for (int i = 0; i < perThread; i++)
            {
                ring += PmemLog.FrameLength(MixedLength(id, i));
            }
        }
        long logLength = PmemLog.LengthFor((ring + 4095) / 4096 * 4096);
        using DaxMapping mapping = DaxMapping.CreateAnonymous(logLength + 64 * 1024, new DaxMappingOptions { ForceCacheLineGranularity = true });
        var (pool, log) = LogTests.NewLog(mapping, logLength);
        long[][] lsns = new long[threads][];
        using var start = new Barrier(threads);
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
                    byte[] payload = new byte[1400];
                    start.SignalAndWait();
                    for (int i = 0; i < perThread; i++)
                    {
                        Span<byte> record = payload.AsSpan(0, MixedLength(id, i));
                        FillMixed(record, id, i);
                        lsns[id][i] = log.Append(record);
                    }
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref failure, e, null);
                }
            });
            workers[t].Start();
        }
        foreach (Thread worker in workers)
        {
            worker.Join();
        }
        Assert.Null(failure);

        var recovered = PmemLog.Open(PmemPool.Open(mapping, LogTests.Layout, new PoolOpenOptions { ReadOnly = true }), log.Offset);
        Assert.Equal(log.Tail, recovered.Tail);
        int[] next = new int[threads];
        byte[] expected = new byte[1400];
        foreach (LogRecord record in recovered.ReadAll())
        {
            int id = BinaryPrimitives.ReadInt32LittleEndian(record.Payload);
            int seq = BinaryPrimitives.ReadInt32LittleEndian(record.Payload[4..]);
            Assert.InRange(id, 0, threads - 1);
            if (seq != next[id] || seq >= perThread || lsns[id][seq] != record.Lsn)
            {
                Assert.Fail($"thread {id}: record {seq} at LSN {record.Lsn} where record {next[id]} was due");
            }
            Span<byte> want = expected.AsSpan(0, MixedLength(id, seq));
            FillMixed(want, id, seq);
            if (!record.Payload.SequenceEqual(want))
            {
                Assert.Fail($"thread {id} record {seq} at LSN {record.Lsn}: the payload read back differs from the one appended");
            }
            next[id]++;
        }
        Assert.All(next, n => Assert.Equal(perThread, n));
        pool.Dispose();
    }
}
