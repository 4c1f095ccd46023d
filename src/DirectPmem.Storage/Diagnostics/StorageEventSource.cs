using System.Diagnostics.Tracing;

namespace DirectPmem.Storage.Diagnostics;

/// <summary>
/// The EventSource <c>DirectPmem.Storage</c>: EventCounters over <see cref="StorageCounts"/>. It
/// has no events of its own; enabling it turns counting on, and disabling it by every listener
/// turns it off.
/// </summary>
[EventSource(Name = StorageCounters.EventSourceName)]
internal sealed class StorageEventSource : EventSource
{
    internal static readonly StorageEventSource Log = new();

    private DiagnosticCounter[]? _counters;
    private EventCounter? _batchSize;

    private StorageEventSource()
    {
    }

    /// <summary>Records the size of one group-commit batch (only called while enabled).</summary>
    internal void OnBatch(long records) => Volatile.Read(ref _batchSize)?.WriteMetric((double)records);

    protected override void OnEventCommand(EventCommandEventArgs command)
    {
        if (command.Command == EventCommand.Enable)
        {
            CreateCounters();
        }
        // IsEnabled() is true while any listener or session has the source enabled.
        StorageCounts.s_enabled = IsEnabled();
    }

    private void CreateCounters()
    {
        if (_counters is not null)
        {
            return;
        }
        var batchSize = new EventCounter("log-batch-size", this) { DisplayName = "Log records per tail-word persist (the tail word is persisted lazily)", DisplayUnits = "records" };
        _counters =
        [
            Rate("log-appends", "Log appends", "", () => Volatile.Read(ref StorageCounts.s_appends)),
            Rate("log-bytes-appended", "Log bytes appended (frames)", "B", () => Volatile.Read(ref StorageCounts.s_appendBytes)),
            Rate("log-publishes", "Log tail-word persists", "", () => Volatile.Read(ref StorageCounts.s_publishes)),
            batchSize,
            Rate("tx-commits", "Transactions committed", "", () => Volatile.Read(ref StorageCounts.s_commits)),
            Rate("tx-aborts", "Transactions aborted", "", () => Volatile.Read(ref StorageCounts.s_aborts)),
        ];
        Volatile.Write(ref _batchSize, batchSize);
    }

    private IncrementingPollingCounter Rate(string name, string displayName, string units, Func<long> read)
        => new(name, this, () => read()) { DisplayName = displayName, DisplayUnits = units, DisplayRateTimeScale = TimeSpan.FromSeconds(1) };

    protected override void Dispose(bool disposing)
    {
        if (disposing && _counters is not null)
        {
            Volatile.Write(ref _batchSize, null);
            foreach (DiagnosticCounter counter in _counters)
            {
                counter.Dispose();
            }
            _counters = null;
        }
        base.Dispose(disposing);
    }
}
