using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using DirectPmem.Geometry;
using DirectPmem.Persistence;

namespace DirectPmem.Diagnostics;

/// <summary>
/// DirectPmem's runtime counters, published by the EventSource named <see cref="EventSourceName"/>
/// as EventCounters: readable with <c>dotnet-counters monitor --counters DirectPmem -p PID</c>,
/// <c>dpmem monitor PID</c>, or an in-process <see cref="System.Diagnostics.Tracing.EventListener"/>.
/// </summary>
/// <remarks>
/// <para>Counters (EventCounter names): <c>persists</c>, <c>flushes</c>, <c>drains</c>,
/// <c>bytes-flushed</c> (bytes persisted, flushed, or copied and flushed), <c>bytes-copied</c>,
/// <c>nt-bytes-copied</c> (copied with non-temporal stores), <c>msyncs</c> and <c>msync-bytes</c>
/// are rates (incrementing counters); <c>open-mappings</c>, <c>mapped-bytes-4k</c>,
/// <c>mapped-bytes-2m</c> and <c>mapped-bytes-1g</c> are gauges.</para>
/// <para>Cost: the operation counters are only incremented while a listener has the source
/// enabled; otherwise a hot method pays one load of a static flag and a branch. Mappings are
/// always counted (creation and disposal are not hot). The AppContext switch
/// <c>DirectPmem.Diagnostics.Counters</c> set to false (or the environment variable
/// <c>DIRECTPMEM_COUNTERS=0</c>) removes the operation counting altogether: the JIT folds the
/// check away. The <c>Dangerous*</c> pointer methods of <see cref="Pmem"/> are never counted.</para>
/// </remarks>
public static class PmemCounters
{
    /// <summary>The name of the EventSource (and of the counter provider for dotnet-counters): <c>DirectPmem</c>.</summary>
    public const string EventSourceName = "DirectPmem";

    /// <summary>Whether operation counting is compiled in (the AppContext switch and DIRECTPMEM_COUNTERS allow it).</summary>
    public static bool IsSupported => Counters.IsSupported;

    /// <summary>Whether a listener has the counters enabled at this moment.</summary>
    public static bool IsEnabled => Counters.IsSupported && Counters.s_enabled;
}

/// <summary>The counts behind <see cref="PmemCounters"/> and the calls the hot paths make.</summary>
internal static class Counters
{
    // Read once: false folds every check below to nothing at tier-1 JIT.
    [FeatureSwitchDefinition("DirectPmem.Diagnostics.Counters")]
    internal static bool IsSupported { get; } = ReadSupported();

    // Set while a listener has the EventSource enabled; read by every counted operation.
    internal static bool s_enabled;

    internal static long s_persists;
    internal static long s_flushes;
    internal static long s_drains;
    internal static long s_bytesFlushed;
    internal static long s_bytesCopied;
    internal static long s_ntBytesCopied;
    internal static long s_msyncs;
    internal static long s_msyncBytes;
    internal static long s_openMappings;
    internal static long s_mappedPte;
    internal static long s_mappedPmd;
    internal static long s_mappedPud;

    private static bool ReadSupported()
    {
        if (AppContext.TryGetSwitch("DirectPmem.Diagnostics.Counters", out bool allowed) && !allowed)
        {
            return false;
        }
        return Environment.GetEnvironmentVariable("DIRECTPMEM_COUNTERS") != "0";
    }

    /// <summary>A persist (flush + drain) of <paramref name="length"/> bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void OnPersist(long length)
    {
        if (IsSupported && s_enabled)
        {
            CountPersist(length);
        }
    }

    /// <summary>A flush of <paramref name="length"/> bytes without a drain.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void OnFlush(long length)
    {
        if (IsSupported && s_enabled)
        {
            CountFlush(length);
        }
    }

    /// <summary>A drain (fence).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void OnDrain()
    {
        if (IsSupported && s_enabled)
        {
            Interlocked.Increment(ref s_drains);
        }
    }

    /// <summary>A copy or fill of <paramref name="length"/> bytes with <paramref name="flags"/> into a mapping of <paramref name="granularity"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void OnCopy(long length, PmemCopyOptions flags, PersistGranularity granularity)
    {
        if (IsSupported && s_enabled)
        {
            CountCopy(length, flags, granularity);
        }
    }

    /// <summary>An msync of <paramref name="length"/> bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void OnMSync(long length)
    {
        if (IsSupported && s_enabled)
        {
            Interlocked.Increment(ref s_msyncs);
            Interlocked.Add(ref s_msyncBytes, length);
        }
    }

    /// <summary>A mapping was created (counted whether or not anyone listens: gauges must be right when a listener arrives).</summary>
    internal static void OnMap(PageSize pageSize, long length) => Track(pageSize, length, 1);

    /// <summary>A mapping was disposed.</summary>
    internal static void OnUnmap(PageSize pageSize, long length) => Track(pageSize, -length, -1);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void CountPersist(long length)
    {
        Interlocked.Increment(ref s_persists);
        Interlocked.Add(ref s_bytesFlushed, length);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void CountFlush(long length)
    {
        Interlocked.Increment(ref s_flushes);
        Interlocked.Add(ref s_bytesFlushed, length);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void CountCopy(long length, PmemCopyOptions flags, PersistGranularity granularity)
    {
        Interlocked.Add(ref s_bytesCopied, length);
        if (granularity is not (PersistGranularity.CacheLine or PersistGranularity.Byte))
        {
            // Page mappings copy with ordinary stores and msync (counted there); volatile memory is not flushed.
            return;
        }
        // The same choice CopyEngine makes: non-temporal when asked, or from the threshold on
        // unless temporal stores (or no flush) were asked for.
        bool nonTemporal = Pmem.UsesNonTemporalStores && (flags & (PmemCopyOptions.Temporal | PmemCopyOptions.NoFlush)) == 0
            && ((flags & PmemCopyOptions.NonTemporal) != 0 || length >= Pmem.NonTemporalThreshold);
        if (nonTemporal)
        {
            Interlocked.Add(ref s_ntBytesCopied, length);
        }
        if ((flags & PmemCopyOptions.NoFlush) == 0)
        {
            Interlocked.Add(ref s_bytesFlushed, length);
        }
        if ((flags & PmemCopyOptions.NoDrain) == 0)
        {
            Interlocked.Increment(ref s_drains);
        }
    }

    private static void Track(PageSize pageSize, long length, int mappings)
    {
        // The first mapping creates the EventSource, so that a listener (dotnet-counters, dpmem
        // monitor) finds "DirectPmem" in any process that has mapped something.
        _ = PmemEventSource.Log;
        Interlocked.Add(ref s_openMappings, mappings);
        switch (pageSize)
        {
            case PageSize.Pmd:
                Interlocked.Add(ref s_mappedPmd, length);
                break;
            case PageSize.Pud:
                Interlocked.Add(ref s_mappedPud, length);
                break;
            default:
                Interlocked.Add(ref s_mappedPte, length);
                break;
        }
    }
}
