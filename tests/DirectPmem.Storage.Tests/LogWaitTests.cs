using System.Globalization;
using DirectPmem.Mapping;
using Xunit;

namespace DirectPmem.Storage.Tests;

/// <summary>
/// An appender behind a predecessor that reserved space and then stopped (as one descheduled in
/// its copy): it must not return before the predecessor's record is durable, must not burn a CPU
/// while it waits, and must finish once the predecessor completes.
/// </summary>
public sealed class LogWaitTests
{
    [Fact]
    public void AppenderBehindAStalledPredecessorWaitsWithoutSpinningAndCompletesWhenItDoes()
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = LogTests.NewLog(mapping, 16 * 1024);
        byte[] first = LogTests.Payload(1, 100);
        byte[] second = LogTests.Payload(2, 700); // a long frame: the streamed copy path
        long stalled = log.Reserve(PmemLog.FrameLength(first.Length));
        long lsn = -1;
        double cpuMilliseconds = -1;
        Exception? failure = null;
        var waiter = new Thread(() =>
        {
            try
            {
                double before = ThreadCpuMilliseconds();
                lsn = log.Append(second);
                cpuMilliseconds = ThreadCpuMilliseconds() - before;
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        waiter.Start();
        Thread.Sleep(600);
        Assert.True(waiter.IsAlive, "the append returned while the record before it was not durable");
        Assert.Equal(0, log.Tail);

        // The predecessor resumes: copy, drain, complete; then the waiter completes behind it.
        log.WriteFrame(stalled, first);
        log.DrainWrites();
        Assert.True(log.TryComplete(stalled, stalled + PmemLog.FrameLength(first.Length)));
        Assert.True(waiter.Join(TestTime.Limit(TimeSpan.FromMinutes(2))), "the waiting append did not finish after its predecessor completed " + TestTime.Describe(TestTime.Limit(TimeSpan.FromMinutes(2))));
        Assert.Null(failure);
        Assert.Equal(stalled + PmemLog.FrameLength(first.Length), lsn);
        Assert.Equal(lsn + PmemLog.FrameLength(second.Length), log.Tail);
        var records = LogTests.ReadAll(log);
        Assert.Equal([stalled, lsn], records.Select(r => r.Lsn));
        Assert.Equal(first, records[0].Payload);
        Assert.Equal(second, records[1].Payload);

        // The waiter slept (blocked once the predecessor had made no progress for about 1 ms):
        // a spinning or yielding waiter uses about all of the 600 ms as CPU time.
        Assert.True(cpuMilliseconds < 300, string.Create(CultureInfo.InvariantCulture,
            $"the waiting appender used {cpuMilliseconds} ms of CPU while its predecessor was stalled for 600 ms"));
        pool.Dispose();
    }

    [Fact]
    public void AWaitingAppenderIsCompletedByItsPredecessorWithoutRunningAgain()
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = LogTests.NewLog(mapping, 16 * 1024);
        byte[] first = LogTests.Payload(1, 100);
        byte[] second = LogTests.Payload(2, 48);
        long stalled = log.Reserve(PmemLog.FrameLength(first.Length));
        long lsn = -1;
        Exception? failure = null;
        var waiter = new Thread(() =>
        {
            try
            {
                lsn = log.Append(second);
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        waiter.Start();
        // The waiter drains and announces its record, then blocks (a sleeping thread is past its announcement).
        TimeSpan limit = TestTime.Limit(TimeSpan.FromMinutes(1));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while ((waiter.ThreadState & ThreadState.WaitSleepJoin) == 0 || log.FreeBytes == log.Capacity - PmemLog.FrameLength(first.Length))
        {
            Assert.True(clock.Elapsed < limit, "the appender did not block behind its stalled predecessor " + TestTime.Describe(limit));
            Thread.Sleep(10);
        }
        Thread.Sleep(50);
        Assert.Equal(0, log.Tail);

        // The predecessor completes: its one store of the cursor covers the waiter's record too,
        // before the waiter has run again.
        log.WriteFrame(stalled, first);
        log.DrainWrites();
        Assert.True(log.TryComplete(stalled, stalled + PmemLog.FrameLength(first.Length)));
        long end = stalled + PmemLog.FrameLength(first.Length) + PmemLog.FrameLength(second.Length);
        Assert.Equal(end, log.Tail);
        Assert.True(waiter.Join(limit), "the helped append did not return " + TestTime.Describe(limit));
        Assert.Null(failure);
        Assert.Equal(stalled + PmemLog.FrameLength(first.Length), lsn);
        Assert.Equal(end, log.Tail);
        Assert.Equal([stalled, lsn], LogTests.ReadAll(log).Select(r => r.Lsn));
        pool.Dispose();
    }

    [Fact]
    public void ACompletionMovesOverAnnouncedRecordsOnlyAndNeverOverOneThatIsNotDrained()
    {
        // Three appenders: the second's frame is 16 KiB, so the third starts 16 KiB after it, in
        // the second's done slot. The third drains and announces; the first completes: the cursor
        // must stop at the second (not written yet), whose slot holds the third's end.
        using DaxMapping mapping = PoolTests.NewMapping(256 * 1024);
        var (pool, log) = LogTests.NewLog(mapping, 64 * 1024);
        byte[] first = LogTests.Payload(1, 40);
        byte[] second = LogTests.Payload(2, 16 * 1024 - 16);
        byte[] third = LogTests.Payload(3, 40);
        Assert.Equal(16 * 1024, PmemLog.FrameLength(second.Length));
        long a = log.Reserve(PmemLog.FrameLength(first.Length));
        long b = log.Reserve(PmemLog.FrameLength(second.Length));
        long c = log.Reserve(PmemLog.FrameLength(third.Length));
        long end = c + PmemLog.FrameLength(third.Length);
        Assert.False(CopyDrainComplete(log, c, third));
        Assert.Equal(a, log.Tail);

        Assert.True(CopyDrainComplete(log, a, first));
        Assert.Equal(b, log.Tail);

        // The second completes and moves the cursor over the announced third.
        Assert.True(CopyDrainComplete(log, b, second));
        Assert.Equal(end, log.Tail);
        Assert.True(log.TryComplete(c, end));
        Assert.Equal([a, b, c], LogTests.ReadAll(log).Select(r => r.Lsn));
        pool.Dispose();
    }

    [Fact]
    public void ARecordLongerThanTheDoneSpanIsCompletedByItsOwner()
    {
        // A frame longer than the done slots span is never announced: its predecessor stops before
        // it, and its owner moves the cursor over it.
        using DaxMapping mapping = PoolTests.NewMapping(256 * 1024);
        var (pool, log) = LogTests.NewLog(mapping, 64 * 1024);
        byte[] first = LogTests.Payload(1, 40);
        byte[] big = LogTests.Payload(2, 20 * 1024);
        long a = log.Reserve(PmemLog.FrameLength(first.Length));
        long b = log.Reserve(PmemLog.FrameLength(big.Length));
        long end = b + PmemLog.FrameLength(big.Length);
        Assert.False(CopyDrainComplete(log, b, big));
        Assert.True(CopyDrainComplete(log, a, first));
        Assert.Equal(b, log.Tail);
        Assert.True(log.TryComplete(b, end));
        Assert.Equal(end, log.Tail);
        Assert.Equal([a, b], LogTests.ReadAll(log).Select(r => r.Lsn));
        pool.Dispose();
    }

    // Steps 2 and 3 of one appender: copy, drain, complete (or announce); whether the record is acknowledged.
    private static bool CopyDrainComplete(PmemLog log, long start, byte[] payload)
    {
        log.WriteFrame(start, payload);
        log.DrainWrites();
        return log.TryComplete(start, start + PmemLog.FrameLength(payload.Length));
    }

    // utime + stime of the calling thread from /proc/thread-self/stat, in clock ticks of 10 ms.
    private static double ThreadCpuMilliseconds()
    {
        string stat = File.ReadAllText("/proc/thread-self/stat");
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // After "pid (comm) ", field 3 (state) is index 0: utime is field 14, stime field 15.
        long ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return ticks * 10.0;
    }
}
