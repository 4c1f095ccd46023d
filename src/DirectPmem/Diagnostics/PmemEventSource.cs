using System.Diagnostics.Tracing;

namespace DirectPmem.Diagnostics;

/// <summary>
/// The EventSource <c>DirectPmem</c>: EventCounters over <see cref="Counters"/>. It has no events
/// of its own; enabling it (EventListener, EventPipe, dotnet-counters) turns operation counting on
/// and disabling it by every listener turns it off.
/// </summary>
[EventSource(Name = PmemCounters.EventSourceName)]
internal sealed class PmemEventSource : EventSource
{
    internal static readonly PmemEventSource Log = new();

    private DiagnosticCounter[]? _counters;

    private PmemEventSource()
    {
    }

    protected override void OnEventCommand(EventCommandEventArgs command)
    {
        if (command.Command == EventCommand.Enable)
        {
            CreateCounters();
        }
        // IsEnabled() is true while any listener or session has the source enabled.
        Counters.s_enabled = IsEnabled();
    }

    [NonEvent]
    private void CreateCounters()
    {
        if (_counters is not null)
        {
            return;
        }
        _counters =
        [
            Rate("persists", "Persists", "", () => Volatile.Read(ref Counters.s_persists)),
            Rate("flushes", "Flushes (without drain)", "", () => Volatile.Read(ref Counters.s_flushes)),
            Rate("drains", "Drains", "", () => Volatile.Read(ref Counters.s_drains)),
            Rate("bytes-flushed", "Bytes flushed", "B", () => Volatile.Read(ref Counters.s_bytesFlushed)),
            Rate("bytes-copied", "Bytes copied (write, move, fill)", "B", () => Volatile.Read(ref Counters.s_bytesCopied)),
            Rate("nt-bytes-copied", "Bytes copied with non-temporal stores", "B", () => Volatile.Read(ref Counters.s_ntBytesCopied)),
            Rate("msyncs", "msync calls", "", () => Volatile.Read(ref Counters.s_msyncs)),
            Rate("msync-bytes", "Bytes msynced", "B", () => Volatile.Read(ref Counters.s_msyncBytes)),
            Gauge("open-mappings", "Open mappings", "", () => Volatile.Read(ref Counters.s_openMappings)),
            Gauge("mapped-bytes-4k", "Mapped bytes, 4 KiB pages", "B", () => Volatile.Read(ref Counters.s_mappedPte)),
            Gauge("mapped-bytes-2m", "Mapped bytes, 2 MiB pages", "B", () => Volatile.Read(ref Counters.s_mappedPmd)),
            Gauge("mapped-bytes-1g", "Mapped bytes, 1 GiB pages", "B", () => Volatile.Read(ref Counters.s_mappedPud)),
        ];
    }

    private IncrementingPollingCounter Rate(string name, string displayName, string units, Func<long> read)
        => new(name, this, () => read()) { DisplayName = displayName, DisplayUnits = units, DisplayRateTimeScale = TimeSpan.FromSeconds(1) };

    private PollingCounter Gauge(string name, string displayName, string units, Func<long> read)
        => new(name, this, () => read()) { DisplayName = displayName, DisplayUnits = units };

    protected override void Dispose(bool disposing)
    {
        if (disposing && _counters is not null)
        {
            foreach (DiagnosticCounter counter in _counters)
            {
                counter.Dispose();
            }
            _counters = null;
        }
        base.Dispose(disposing);
    }
}
