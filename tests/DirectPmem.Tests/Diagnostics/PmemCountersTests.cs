using System.Collections.Concurrent;
using System.Diagnostics.Tracing;
using DirectPmem.Diagnostics;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Persistence;
using Xunit;

namespace DirectPmem.Tests.Diagnostics;

// The counters are process-wide: these tests run alone, after the parallel ones.
[CollectionDefinition(nameof(PmemCountersTests), DisableParallelization = true)]
public sealed class CountersRunAlone;

[Collection(nameof(PmemCountersTests))]
public sealed class PmemCountersTests
{
    [Fact]
    public void NothingIsCountedWhileNobodyListens()
    {
        Assert.False(PmemCounters.IsEnabled);
        using DaxMapping map = DaxMapping.CreateAnonymous(2 << 20, new DaxMappingOptions { ForceCacheLineGranularity = true });
        long persists = Volatile.Read(ref Counters.s_persists);
        long copied = Volatile.Read(ref Counters.s_bytesCopied);
        for (int i = 0; i < 100; i++)
        {
            map.Persist(i * 64, 8);
            map.Write(new byte[512], 4096);
        }
        Assert.Equal(persists, Volatile.Read(ref Counters.s_persists));
        Assert.Equal(copied, Volatile.Read(ref Counters.s_bytesCopied));
    }

    [Fact]
    public void AnEventListenerTurnsCountingOnAndReceivesTheEventCounters()
    {
        Assert.SkipUnless(PmemCounters.IsSupported, "DIRECTPMEM_COUNTERS=0 or the AppContext switch turned the counters off");
        using DaxMapping map = DaxMapping.CreateAnonymous(2 << 20, new DaxMappingOptions { ForceCacheLineGranularity = true });
        using var listener = new CounterListener();
        Assert.True(PmemCounters.IsEnabled);
        long persists = Volatile.Read(ref Counters.s_persists);
        long flushes = Volatile.Read(ref Counters.s_flushes);
        long drains = Volatile.Read(ref Counters.s_drains);
        long flushed = Volatile.Read(ref Counters.s_bytesFlushed);
        long copied = Volatile.Read(ref Counters.s_bytesCopied);
        long nonTemporal = Volatile.Read(ref Counters.s_ntBytesCopied);

        for (int i = 0; i < 100; i++)
        {
            map.Persist(i * 64, 8);
        }
        map.Flush(0, 4096);
        map.Drain();
        map.Write(new byte[64], 8192);      // below the non-temporal threshold: temporal stores
        map.Write(new byte[4096], 16384);   // non-temporal stores (unless DIRECTPMEM_NO_MOVNT)

        Assert.True(Volatile.Read(ref Counters.s_persists) - persists >= 100);
        Assert.True(Volatile.Read(ref Counters.s_flushes) - flushes >= 1);
        Assert.True(Volatile.Read(ref Counters.s_drains) - drains >= 3);
        Assert.True(Volatile.Read(ref Counters.s_bytesFlushed) - flushed >= 100 * 8 + 4096 + 64 + 4096);
        Assert.True(Volatile.Read(ref Counters.s_bytesCopied) - copied >= 64 + 4096);
        if (Pmem.UsesNonTemporalStores)
        {
            Assert.True(Volatile.Read(ref Counters.s_ntBytesCopied) - nonTemporal >= 4096);
        }

        // The EventCounters arrive at the listener: persists as a rate (Increment), open mappings as a gauge (Mean).
        IDictionary<string, object> persistsPayload = listener.WaitFor("persists", p => Convert.ToDouble(p["Increment"], System.Globalization.CultureInfo.InvariantCulture) > 0, () => map.Persist(0, 8));
        Assert.Equal("Sum", persistsPayload["CounterType"]);
        IDictionary<string, object> mappings = listener.WaitFor("open-mappings", p => Convert.ToDouble(p["Mean"], System.Globalization.CultureInfo.InvariantCulture) >= 1, null);
        Assert.Equal("Mean", mappings["CounterType"]);
        listener.WaitFor("mapped-bytes-4k", p => Convert.ToDouble(p["Mean"], System.Globalization.CultureInfo.InvariantCulture) >= 2 << 20, null);

        listener.Dispose();
        Assert.False(PmemCounters.IsEnabled);
    }

    [Fact]
    public void MappingsAreCountedByPageSizeAndUncountedWhenDisposed()
    {
        long open = Volatile.Read(ref Counters.s_openMappings);
        long pte = Volatile.Read(ref Counters.s_mappedPte);
        DaxMapping map = DaxMapping.CreateAnonymous(4 << 20, new DaxMappingOptions { PageSize = PageSize.Pte });
        Assert.Equal(open + 1, Volatile.Read(ref Counters.s_openMappings));
        Assert.Equal(pte + (4 << 20), Volatile.Read(ref Counters.s_mappedPte));
        map.Dispose();
        map.Dispose();
        Assert.Equal(open, Volatile.Read(ref Counters.s_openMappings));
        Assert.Equal(pte, Volatile.Read(ref Counters.s_mappedPte));
    }

    [Fact]
    public void MsyncsAreCountedOnPageCacheMappings()
    {
        using TempDirectory dir = Support.PageCacheDirectory.Create();
        using PmemFile file = PmemFile.Create(Path.Combine(dir.Path, "msync.pmem"), 1 << 20);
        using DaxMapping map = file.Map();
        Assert.SkipUnless(map.Granularity == PersistGranularity.Page, $"the temporary directory is not page cache ({map.Granularity})");
        using var listener = new CounterListener();
        long msyncs = Volatile.Read(ref Counters.s_msyncs);
        long bytes = Volatile.Read(ref Counters.s_msyncBytes);
        map.Persist(100, 8);
        Assert.Equal(msyncs + 1, Volatile.Read(ref Counters.s_msyncs));
        Assert.Equal(bytes + Environment.SystemPageSize, Volatile.Read(ref Counters.s_msyncBytes));
    }

    private sealed class CounterListener : EventListener
    {
        private readonly ConcurrentQueue<IDictionary<string, object>> _payloads = new();
        private EventSource? _source;

        protected override void OnEventSourceCreated(EventSource eventSource)
        {
            if (eventSource.Name == PmemCounters.EventSourceName)
            {
                _source = eventSource;
                EnableEvents(eventSource, EventLevel.Informational, EventKeywords.All,
                    new Dictionary<string, string?> { ["EventCounterIntervalSec"] = "0.2" });
            }
        }

        protected override void OnEventWritten(EventWrittenEventArgs eventData)
        {
            if (eventData.EventName == "EventCounters" && eventData.Payload?[0] is IDictionary<string, object> payload)
            {
                _payloads.Enqueue(payload);
            }
        }

        internal IDictionary<string, object> WaitFor(string name, Func<IDictionary<string, object>, bool> match, Action? keepBusy)
        {
            TimeSpan limit = TestTime.Limit(TimeSpan.FromMinutes(2));
            DateTime end = DateTime.UtcNow + limit;
            while (DateTime.UtcNow < end)
            {
                keepBusy?.Invoke();
                foreach (IDictionary<string, object> payload in _payloads)
                {
                    if (payload["Name"] as string == name && match(payload))
                    {
                        return payload;
                    }
                }
                Thread.Sleep(20);
            }
            Assert.Fail($"no EventCounters payload for '{name}' matched {TestTime.Describe(limit)} ({_payloads.Count} payloads)");
            return null!;
        }

        public override void Dispose()
        {
            if (_source is not null)
            {
                DisableEvents(_source);
            }
            base.Dispose();
        }
    }
}
