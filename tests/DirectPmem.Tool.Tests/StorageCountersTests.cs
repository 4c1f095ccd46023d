using System.Collections.Concurrent;
using System.Diagnostics.Tracing;
using DirectPmem.Mapping;
using DirectPmem.Storage.Diagnostics;
using DirectPmem.Storage.Transactions;
using DirectPmem.Storage;
using Xunit;

namespace DirectPmem.Tool.Tests;

/// <summary>The DirectPmem.Storage EventSource, read by an in-process EventListener.</summary>
[Collection(nameof(TimedChildProcesses))]
public sealed class StorageCountersTests
{
    [Fact]
    public void AListenerSeesLogAppendsTailPersistsBatchSizesAndTransactionOutcomes()
    {
        var forced = new DaxMappingOptions { ForceCacheLineGranularity = true };
        using PmemPool pool = TestPools.Create(DaxMapping.CreateAnonymous(4 << 20, forced), "counters", ownsMapping: true);
        PmemLog log = PmemLog.Create(pool, pool.DataOffset, 1 << 20);
        using DaxMapping heapMapping = DaxMapping.CreateAnonymous(1 << 20, forced);
        using TransactionalHeap heap = TransactionalHeap.Create(heapMapping, 0, heapMapping.Length);
        Assert.Equal("DirectPmem.Storage", StorageCounters.EventSourceName);
        Assert.True(StorageCounters.IsSupported, "DIRECTPMEM_COUNTERS=0 or the AppContext switch is set for the test process");

        // Not counted: nobody listens yet.
        log.Append(new byte[10]);
        Assert.False(StorageCounters.IsEnabled);

        using var listener = new StorageListener();
        Assert.True(StorageCounters.IsEnabled);
        // The rate counters take their baseline at their first report: count from there.
        Assert.True(listener.WaitForFirstReport(TestTime.Limit(TimeSpan.FromMinutes(2))), "no EventCounters report " + TestTime.Describe(TestTime.Limit(TimeSpan.FromMinutes(2))));
        byte[] record = new byte[100];
        for (int i = 0; i < 50; i++)
        {
            log.Append(record); // 50 single records; none persists the tail word (far inside the window)
        }
        using (var batch = new LogBatch())
        {
            for (int i = 0; i < 4; i++)
            {
                batch.Add(record);
            }
            log.Append(batch); // 4 records
        }
        log.Dispose(); // one tail-word persist, covering the 55 records since the log was created
        for (int i = 0; i < 7; i++)
        {
            using Transaction tx = heap.Begin();
            tx.GetRef<long>(heap.RootOffset) = i;
            if (i % 3 != 0)
            {
                tx.Commit(); // i = 1, 2, 4, 5: committed; 0, 3, 6: rolled back by Dispose
            }
        }

        Assert.True(listener.WaitFor(t => t.Sum("log-appends") >= 54 && t.Sum("tx-commits") >= 4 && t.Sum("tx-aborts") >= 3 && t.BatchMax > 0, TestTime.Limit(TimeSpan.FromMinutes(2))),
            listener.Describe());
        Assert.Equal(54, listener.Sum("log-appends"));
        Assert.Equal(1, listener.Sum("log-publishes"));
        Assert.Equal(54 * PmemLog.FrameLength(100), listener.Sum("log-bytes-appended"));
        Assert.Equal(4, listener.Sum("tx-commits"));
        Assert.Equal(3, listener.Sum("tx-aborts"));
        // The batch-size EventCounter: the records one tail-word persist covers (the one appended before anyone listened included).
        Assert.Equal(55, listener.BatchMax);
        Assert.Equal(55, listener.BatchMin);

        listener.Dispose();
        Assert.False(StorageCounters.IsEnabled);
    }

    [Fact]
    public void CountingFramesNeverReadsPastTheRangeItIsGiven()
    {
        var forced = new DaxMappingOptions { ForceCacheLineGranularity = true };
        using PmemPool pool = TestPools.Create(DaxMapping.CreateAnonymous(1 << 20, forced), "frames", ownsMapping: true);
        PmemLog log = PmemLog.Create(pool, pool.DataOffset, 64 << 10);
        using var listener = new StorageListener();
        Assert.True(listener.WaitForFirstReport(TestTime.Limit(TimeSpan.FromMinutes(2))), "no EventCounters report " + TestTime.Describe(TestTime.Limit(TimeSpan.FromMinutes(2))));
        // A record that wraps around the end of the ring still counts as one per tail persist
        // (each 20 KB record passes half the 30 KB window, so each persists the tail word).
        byte[] big = new byte[20_000];
        for (int i = 0; i < 9; i++)
        {
            if (log.FreeBytes < PmemLog.FrameLength(big.Length))
            {
                log.Truncate(log.Tail);
            }
            log.Append(big);
        }
        Assert.True(listener.WaitFor(t => t.Sum("log-publishes") >= 9 && t.BatchMax > 0, TestTime.Limit(TimeSpan.FromMinutes(2))), listener.Describe());
        Assert.Equal(1, listener.BatchMax);
        Assert.Equal(1, listener.BatchMin);
    }

    /// <summary>Enables DirectPmem.Storage with a 1 s interval and sums what its counters report.</summary>
    private sealed class StorageListener : EventListener
    {
        private readonly ConcurrentDictionary<string, double> _sums = new(StringComparer.Ordinal);
        private readonly Lock _gate = new();
        private double _batchMax;
        private double _batchMin = double.MaxValue;

        internal double BatchMax
        {
            get
            {
                lock (_gate)
                {
                    return _batchMax;
                }
            }
        }

        internal double BatchMin
        {
            get
            {
                lock (_gate)
                {
                    return _batchMin;
                }
            }
        }

        internal long Sum(string name) => (long)_sums.GetValueOrDefault(name);

        internal bool WaitForFirstReport(TimeSpan timeout)
        {
            DateTime end = DateTime.UtcNow + timeout;
            while (!(_sums.ContainsKey("log-appends") && _sums.ContainsKey("tx-commits")))
            {
                if (DateTime.UtcNow > end)
                {
                    return false;
                }
                Thread.Sleep(50);
            }
            return true;
        }

        internal bool WaitFor(Func<StorageListener, bool> condition, TimeSpan timeout)
        {
            DateTime end = DateTime.UtcNow + timeout;
            while (!condition(this))
            {
                if (DateTime.UtcNow > end)
                {
                    return false;
                }
                Thread.Sleep(100);
            }
            // One more interval, so that nothing still in flight is missed by the exact assertions.
            Thread.Sleep(TestTime.Limit(TimeSpan.FromMilliseconds(1500)));
            return true;
        }

        internal string Describe() => string.Join(", ", _sums.Select(kv => $"{kv.Key}={kv.Value}")) + $", batch {BatchMin}..{BatchMax}";

        protected override void OnEventSourceCreated(EventSource eventSource)
        {
            if (eventSource.Name == StorageCounters.EventSourceName)
            {
                EnableEvents(eventSource, EventLevel.Informational, EventKeywords.All, new Dictionary<string, string?> { ["EventCounterIntervalSec"] = "1" });
            }
        }

        protected override void OnEventWritten(EventWrittenEventArgs data)
        {
            if (data.EventName != "EventCounters" || data.Payload is not { Count: > 0 } || data.Payload[0] is not IDictionary<string, object> payload)
            {
                return;
            }
            string name = (string)payload["Name"];
            if (payload.TryGetValue("Increment", out object? increment))
            {
                _sums.AddOrUpdate(name, Convert.ToDouble(increment, System.Globalization.CultureInfo.InvariantCulture), (_, sum) => sum + Convert.ToDouble(increment, System.Globalization.CultureInfo.InvariantCulture));
            }
            else if (name == "log-batch-size" && Convert.ToInt32(payload["Count"], System.Globalization.CultureInfo.InvariantCulture) > 0)
            {
                lock (_gate)
                {
                    _batchMax = Math.Max(_batchMax, Convert.ToDouble(payload["Max"], System.Globalization.CultureInfo.InvariantCulture));
                    _batchMin = Math.Min(_batchMin, Convert.ToDouble(payload["Min"], System.Globalization.CultureInfo.InvariantCulture));
                }
            }
        }
    }
}
