using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using DirectPmem.Mapping;

namespace DirectPmem.Storage.Diagnostics;

/// <summary>
/// DirectPmem.Storage's runtime counters, published by the EventSource named
/// <see cref="EventSourceName"/> as EventCounters: readable with
/// <c>dotnet-counters monitor --counters DirectPmem.Storage -p PID</c>, <c>dpmem monitor PID</c>
/// (which shows them beside the core's <c>DirectPmem</c> counters), or an in-process
/// <see cref="System.Diagnostics.Tracing.EventListener"/>.
/// </summary>
/// <remarks>
/// <para>Counters (EventCounter names): <c>log-appends</c> (records appended durably),
/// <c>log-bytes-appended</c> (their frames, headers and padding included), <c>log-publishes</c>
/// (tail-word persists: log format v3 persists the tail word lazily, when the log passes half its
/// window, on truncation and on dispose; an append itself is made durable by its own record's fence),
/// <c>tx-commits</c> and <c>tx-aborts</c> are rates; <c>log-media-losses</c> and <c>log-media-lost-bytes</c>
/// are totals since the process started (ranges of a log lost to unreadable media, and their LSN bytes, as
/// recovery and readers report them in <see cref="LogMediaLoss"/>; counted whether or not a listener is
/// enabled, and raised as the Error-level event <c>LogMediaLoss</c> too); <c>log-batch-size</c> is an EventCounter fed once
/// per tail-word persist with the number of records it covers, so its mean over an interval is the
/// number of records per tail-word persist.</para>
/// <para>Cost, the same discipline as the core's <c>DirectPmem.Diagnostics.PmemCounters</c>: the
/// counts move only while a listener has the source enabled; otherwise a counted call pays one
/// load of a static flag and a branch. The batch size needs a walk over the frame headers a publish
/// covers; it is made only while enabled. The AppContext switch
/// <c>DirectPmem.Storage.Diagnostics.Counters</c> set to false (or the environment variable
/// <c>DIRECTPMEM_COUNTERS=0</c>, which also removes the core's) compiles the counting out: the
/// JIT folds the check away. The source exists from the first log or transactional heap on.</para>
/// </remarks>
public static class StorageCounters
{
    /// <summary>The name of the EventSource (and of the counter provider for dotnet-counters): <c>DirectPmem.Storage</c>.</summary>
    public const string EventSourceName = "DirectPmem.Storage";

    /// <summary>Whether counting is compiled in (the AppContext switch and DIRECTPMEM_COUNTERS allow it).</summary>
    public static bool IsSupported => StorageCounts.IsSupported;

    /// <summary>Whether a listener has the counters enabled at this moment.</summary>
    public static bool IsEnabled => StorageCounts.IsSupported && StorageCounts.s_enabled;
}

/// <summary>The counts behind <see cref="StorageCounters"/> and the one-line calls the log and the transactions make.</summary>
internal static class StorageCounts
{
    // Read once: false folds every check below to nothing at tier-1 JIT.
    [FeatureSwitchDefinition("DirectPmem.Storage.Diagnostics.Counters")]
    internal static bool IsSupported { get; } = ReadSupported();

    // Set while a listener has the EventSource enabled; read by every counted operation.
    internal static bool s_enabled;

    internal static long s_appends;
    internal static long s_appendBytes;
    internal static long s_publishes;
    internal static long s_commits;
    internal static long s_aborts;
    internal static long s_mediaLosses;
    internal static long s_mediaLostBytes;

    private static bool ReadSupported()
    {
        if (AppContext.TryGetSwitch("DirectPmem.Storage.Diagnostics.Counters", out bool allowed) && !allowed)
        {
            return false;
        }
        return Environment.GetEnvironmentVariable("DIRECTPMEM_COUNTERS") != "0";
    }

    /// <summary>Creates the EventSource, so that a listener finds it in a process that uses a log or a heap.</summary>
    internal static void Touch() => _ = StorageEventSource.Log;

    /// <summary><paramref name="records"/> records taking <paramref name="frameBytes"/> bytes were appended durably.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void OnAppend(int records, long frameBytes)
    {
        if (IsSupported && s_enabled)
        {
            CountAppend(records, frameBytes);
        }
    }

    /// <summary>
    /// A tail publish from <paramref name="from"/> to <paramref name="to"/> of the log whose ring of
    /// <paramref name="capacity"/> bytes starts at <paramref name="ringOffset"/> of the mapping of <paramref name="pool"/>.
    /// Called by the publisher before its publish: the frames in [from, to) are complete and nobody writes them.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void OnPublish(PmemPool pool, long ringOffset, long capacity, long from, long to)
    {
        if (IsSupported && s_enabled)
        {
            CountPublish(pool, ringOffset, capacity, from, to);
        }
    }

    /// <summary>A log range was lost to unreadable media: always counted (it is rare), and raised as an event.</summary>
    internal static void OnMediaLoss(LogMediaLoss loss)
    {
        Interlocked.Increment(ref s_mediaLosses);
        Interlocked.Add(ref s_mediaLostBytes, loss.LostBytes);
        StorageEventSource source = StorageEventSource.Log;
        if (source.IsEnabled())
        {
            source.LogMediaLoss(loss.LogOffset, loss.StartLsn, loss.EndLsn);
        }
    }

    /// <summary>A transaction committed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void OnCommit()
    {
        if (IsSupported && s_enabled)
        {
            Interlocked.Increment(ref s_commits);
        }
    }

    /// <summary>A transaction was rolled back (Abort, or Dispose without Commit).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void OnAbort()
    {
        if (IsSupported && s_enabled)
        {
            Interlocked.Increment(ref s_aborts);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void CountAppend(int records, long frameBytes)
    {
        Interlocked.Add(ref s_appends, records);
        Interlocked.Add(ref s_appendBytes, frameBytes);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void CountPublish(PmemPool pool, long ringOffset, long capacity, long from, long to)
    {
        Interlocked.Increment(ref s_publishes);
        // The walk reads the ring: inside the pool's read guard, so a Dispose racing it waits.
        pool.EnterRead();
        try
        {
            StorageEventSource.Log.OnBatch(LogFormat.CountFrames(pool.Mapping, ringOffset, capacity, from, to));
        }
        finally
        {
            pool.ExitRead();
        }
    }
}
