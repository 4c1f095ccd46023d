using System.Globalization;
using DirectPmem.Geometry;
using DirectPmem.Mapping;

namespace DirectPmem.Testing;

/// <summary>
/// A crash-consistency sweep: runs <see cref="Workload"/> on a simulated device, crashes it at
/// every barrier (just before each drain completes, and at the end), makes crash images of each
/// crash, opens every image as a new device, runs <see cref="Recover"/> on it (the code's recovery
/// and then its invariant checks, which throw to fail) and collects statistics and failures.
/// </summary>
/// <remarks>
/// The workload is replayed once per crash point, so it must be deterministic: the same stores,
/// flushes and drains on every run. Per crash point, when the number of possible images is at most
/// <see cref="ExhaustiveLimit"/> every image is tried; otherwise the nothing-survived,
/// flushed-survived and everything-survived images and <see cref="RandomImages"/> seeded random
/// images (which include evicted unflushed words unless <see cref="IncludeEviction"/> is off).
/// </remarks>
public sealed class CrashTest
{
    /// <summary>The device length in bytes, a multiple of <see cref="PageSize"/>; 64 KiB by default.</summary>
    public long DeviceLength { get; init; } = 64 * 1024;

    /// <summary>The device's page size; 4 KiB by default.</summary>
    public PageSize PageSize { get; init; } = PageSize.Pte;

    /// <summary>Optional: formats the device before the workload (its drains are not crash points; what it leaves unflushed stays in flight).</summary>
    public Action<DaxMapping>? Setup { get; init; }

    /// <summary>The operation under test, writing through the mapping with the public API.</summary>
    public required Action<DaxMapping> Workload { get; init; }

    /// <summary>Runs on every crash image: the code's recovery, then its invariant checks; an exception fails the image.</summary>
    public required Action<DaxMapping> Recover { get; init; }

    /// <summary>The base seed from which every random image's seed is derived.</summary>
    public ulong Seed { get; init; } = 0x5EED;

    /// <summary>Random images per crash point when enumeration is not exhaustive; 64 by default.</summary>
    public int RandomImages { get; init; } = 64;

    /// <summary>A crash point with at most this many possible images is enumerated exhaustively; 1024 by default, 0 never.</summary>
    public long ExhaustiveLimit { get; init; } = 1024;

    /// <summary>Whether random and exhaustive images may hold unflushed new values, as a cache may evict a dirty line at any time; on by default.</summary>
    public bool IncludeEviction { get; init; } = true;

    /// <summary>Whether to stop at the first failing image; on by default.</summary>
    public bool StopAtFirstFailure { get; init; } = true;

    /// <summary>Replays only this crash point: the drain number from a failure report, or drains + 1 for the end of the workload.</summary>
    public long? OnlyCrashPoint { get; init; }

    /// <summary>With <see cref="OnlySeed"/>, tries only this image at each crash point tried (whatever the other settings would choose).</summary>
    public ImageStrategy? OnlyStrategy { get; init; }

    /// <summary>With <see cref="OnlyStrategy"/>, the seed from a failure report.</summary>
    public ulong? OnlySeed { get; init; }

    /// <summary>Runs the sweep.</summary>
    /// <returns>The statistics, warnings and failures; call <see cref="CrashTestResult.ThrowIfFailed"/> in a test.</returns>
    /// <exception cref="InvalidOperationException">The workload is not deterministic (a replay issued fewer drains than the first run).</exception>
    public CrashTestResult Run()
    {
        ArgumentOutOfRangeException.ThrowIfNegative(RandomImages);
        ArgumentOutOfRangeException.ThrowIfNegative(ExhaustiveLimit);
        if (OnlyStrategy.HasValue != OnlySeed.HasValue)
        {
            throw new ArgumentException("OnlyStrategy and OnlySeed are given together, from a failure report.", nameof(OnlySeed));
        }

        // The first run counts the barriers and collects the misuse warnings.
        long drains;
        SimulatorDiagnostics diagnostics;
        using (SimulatedDevice counting = PrepareDevice())
        {
            Workload(counting.Mapping);
            drains = counting.DrainCount;
            counting.CheckUnflushedStores();
            diagnostics = counting.GetDiagnostics();
        }

        var failures = new List<CrashFailure>();
        var inFlightPerCrash = new List<int>();
        long imagesTried = 0;
        SimulatedDevice? recovery = null;
        byte[] imageBuffer = new byte[DeviceLength];
        ulong[] chosen = [];
        try
        {
            for (long point = 1; point <= drains + 1; point++)
            {
                if (OnlyCrashPoint is long only && only != point)
                {
                    continue;
                }
                CrashState state = CaptureCrashPoint(point, drains);
                inFlightPerCrash.Add(state.InFlight.Count);
                IEnumerable<(ImageStrategy, ulong)> images = OnlyStrategy is ImageStrategy onlyStrategy
                    ? [(onlyStrategy, OnlySeed!.Value)]
                    : ImagesOf(state, point);
                foreach ((ImageStrategy strategy, ulong seed) in images)
                {
                    imagesTried++;
                    // Images are composed into one buffer; a CrashImage is made only for a failure.
                    chosen = chosen.Length >= state.InFlight.Count ? chosen : new ulong[state.InFlight.Count];
                    state.Compose(strategy, seed, IncludeEviction, imageBuffer, chosen);
                    if (recovery is null || recovery.Mapping.IsDisposed)
                    {
                        recovery?.Dispose();
                        recovery = SimulatedDevice.Create(DeviceLength, PageSize);
                    }
                    recovery.Load(imageBuffer);
                    Exception? error = RunRecovery(recovery.Mapping);
                    if (error is not null)
                    {
                        failures.Add(new CrashFailure(state.CreateImage(strategy, seed, IncludeEviction), error));
                        if (StopAtFirstFailure)
                        {
                            return Result();
                        }
                    }
                }
            }
            return Result();
        }
        finally
        {
            recovery?.Dispose();
        }

        CrashTestResult Result() => new(
            new CrashStatistics(drains, inFlightPerCrash.Count, imagesTried, [.. inFlightPerCrash], failures.Count),
            diagnostics, [.. failures]);
    }

    private SimulatedDevice PrepareDevice()
    {
        SimulatedDevice device = SimulatedDevice.Create(DeviceLength, PageSize);
        try
        {
            Setup?.Invoke(device.Mapping);
            device.ResetCounters();
            return device;
        }
        catch
        {
            device.Dispose();
            throw;
        }
    }

    private CrashState CaptureCrashPoint(long point, long drains)
    {
        using SimulatedDevice device = PrepareDevice();
        if (point <= drains)
        {
            device.CrashAtDrain = point;
        }
        Workload(device.Mapping);
        if (point > drains)
        {
            return device.Crash();
        }
        return device.CapturedCrash ?? throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
            $"The workload issued {drains} drains on its first run but only {device.DrainCount} on a replay: a crash test needs a deterministic workload."));
    }

    private IEnumerable<(ImageStrategy Strategy, ulong Seed)> ImagesOf(CrashState state, long point)
        => state.ImagesToCheck(point, ExhaustiveLimit, RandomImages, Seed, IncludeEviction);

    // Recovery code is the code under test: whatever it throws is the failure to report, so every
    // exception is caught and returned (not hidden).
#pragma warning disable CA1031
    private Exception? RunRecovery(DaxMapping mapping)
    {
        try
        {
            Recover(mapping);
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }
#pragma warning restore CA1031
}
