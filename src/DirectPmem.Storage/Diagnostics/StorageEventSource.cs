using System.Diagnostics.Tracing;

namespace DirectPmem.Storage.Diagnostics;

/// <summary>
/// The EventSource <c>DirectPmem.Storage</c>: EventCounters over <see cref="StorageCounts"/>, and one
/// event, <see cref="LogMediaLoss"/> (LSNs of a log lost to unreadable media). Enabling it turns
/// counting on, and disabling it by every listener turns it off.
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

    /// <summary>LSNs [start, end) of the log at <paramref name="logOffset"/> were lost to unreadable media (recovery or a reader met it).</summary>
    [Event(LogMediaLossEventId, Level = EventLevel.Error,
        Message = "LSNs [{1}, {2}) of the log at pool offset {0} are lost to unreadable media (poison or a truncated file)")]
    internal void LogMediaLoss(long logOffset, long startLsn, long endLsn) => WriteEvent(LogMediaLossEventId, logOffset, startLsn, endLsn);

    internal const int LogMediaLossEventId = 1;

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
            new PollingCounter("log-media-losses", this, () => Volatile.Read(ref StorageCounts.s_mediaLosses)) { DisplayName = "Log ranges lost to unreadable media (total)" },
            new PollingCounter("log-media-lost-bytes", this, () => Volatile.Read(ref StorageCounts.s_mediaLostBytes)) { DisplayName = "Log LSN bytes lost to unreadable media (total)", DisplayUnits = "B" },
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
