using System.Diagnostics.Tracing;
using DirectPmem.Diagnostics;
using DirectPmem.Storage.Diagnostics;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Tracing;

namespace DirectPmem.Tool.Monitor;

/// <summary>The last value of one counter, as the EventCounters payload gives it.</summary>
internal sealed record CounterValue(string Provider, string Name, string DisplayName, string Units, bool IsRate, double Value, DateTime Received);

/// <summary>
/// An EventPipe session on another process's <c>DirectPmem</c> and <c>DirectPmem.Storage</c>
/// EventSources (the way dotnet-counters attaches): the EventCounters they publish every interval
/// are kept by provider and name.
/// </summary>
internal sealed class CounterSession : IDisposable
{
    private readonly EventPipeSession _session;
    private readonly EventPipeEventSource _source;
    private readonly Task _processing;
    private readonly Dictionary<string, CounterValue> _values = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private int _batches;

    internal CounterSession(int processId, int intervalSeconds)
    {
        var client = new DiagnosticsClient(processId);
        var arguments = new Dictionary<string, string> { ["EventCounterIntervalSec"] = intervalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        EventPipeProvider[] providers = [.. Providers.Select(name => new EventPipeProvider(name, EventLevel.Informational, (long)EventKeywords.All, arguments))];
        _session = client.StartEventPipeSession(providers, requestRundown: false);
        _source = new EventPipeEventSource(_session.EventStream);
        _source.Dynamic.All += OnEvent;
        _processing = Task.Run(() => _source.Process());
    }

    /// <summary>The providers the session enables, in display order: the core's, then the storage package's.</summary>
    internal static readonly string[] Providers = [PmemCounters.EventSourceName, StorageCounters.EventSourceName];

    /// <summary>How many counter values have arrived (0: the process has not published any).</summary>
    internal int Received => Volatile.Read(ref _batches);

    /// <summary>Whether the process's event stream has ended (it exited).</summary>
    internal bool Ended => _processing.IsCompleted;

    internal IReadOnlyList<CounterValue> Snapshot()
    {
        lock (_gate)
        {
            return _values.Values.OrderBy(v => Array.IndexOf(Providers, v.Provider)).ThenBy(v => v.Name, StringComparer.Ordinal).ToArray();
        }
    }

    private void OnEvent(TraceEvent data)
    {
        if (data.EventName != "EventCounters" || data.PayloadValue(0) is not IDictionary<string, object> outer
            || !outer.TryGetValue("Payload", out object? inner) || inner is not IDictionary<string, object> payload)
        {
            return;
        }
        string name = payload.TryGetValue("Name", out object? n) ? n?.ToString() ?? "" : "";
        string display = payload.TryGetValue("DisplayName", out object? d) && d?.ToString() is { Length: > 0 } text ? text : name;
        string units = payload.TryGetValue("DisplayUnits", out object? u) ? u?.ToString() ?? "" : "";
        bool isRate = payload.TryGetValue("CounterType", out object? type) && type?.ToString() == "Sum";
        payload.TryGetValue(isRate ? "Increment" : "Mean", out object? raw);
        double value = raw is null ? 0 : Convert.ToDouble(raw, System.Globalization.CultureInfo.InvariantCulture);
        if (isRate && payload.TryGetValue("IntervalSec", out object? interval) && Convert.ToDouble(interval, System.Globalization.CultureInfo.InvariantCulture) is > 0 and double seconds)
        {
            value /= seconds;
        }
        lock (_gate)
        {
            _values[data.ProviderName + "/" + name] = new CounterValue(data.ProviderName, name, display, units, isRate, value, DateTime.UtcNow);
        }
        Interlocked.Increment(ref _batches);
    }

    public void Dispose()
    {
        try
        {
            _session.Stop();
        }
        catch (ServerNotAvailableException)
        {
            // The process has exited: there is no session left to stop.
        }
        catch (EndOfStreamException)
        {
            // Same: the diagnostics channel closed with the process.
        }
        _processing.Wait(TimeSpan.FromSeconds(5));
        _source.Dispose();
        _session.Dispose();
    }
}
