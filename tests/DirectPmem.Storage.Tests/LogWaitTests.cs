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
