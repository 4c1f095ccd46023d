using System.Globalization;
using DirectPmem.Mapping;
using DirectPmem.Testing;

namespace DirectPmem.Storage.Tests;

/// <summary>
/// A crash sweep that, unlike <see cref="CrashTest"/>, knows which operations had returned when
/// the crash hit: the workload reports each acknowledgement through <see cref="Progress"/>, which
/// counts it only if the simulated device had not yet captured the crash. Built from the public
/// pieces of DirectPmem.Testing (SimulatedDevice.CrashAtDrain, CrashState images).
/// </summary>
internal sealed class CrashSweep
{
    public long DeviceLength { get; init; } = 128 * 1024;

    /// <summary>Formats the device; its drains are not crash points.</summary>
    public required Action<DaxMapping> Setup { get; init; }

    /// <summary>The deterministic workload; it reports acknowledgements.</summary>
    public required Action<DaxMapping, Progress> Workload { get; init; }

    /// <summary>Recovers an image and checks it against what was acknowledged before the crash.</summary>
    public required Action<DaxMapping, Progress> Check { get; init; }

    public int RandomImages { get; init; } = Knobs.CrashRandomImages;

    public long ExhaustiveLimit { get; init; } = 256;

    public ulong Seed { get; init; } = 0xC0FFEE;

    /// <summary>What the workload acknowledged before the crash.</summary>
    internal sealed class Progress(SimulatedDevice? device)
    {
        private readonly List<long> _values = [];

        /// <summary>Acknowledgements that happened before the crash, in order.</summary>
        public IReadOnlyList<long> Acked => _values;

        /// <summary>The last acknowledged truncation point, or -1.</summary>
        public long Truncated { get; private set; } = -1;

        public void Ack(long value)
        {
            if (device?.CapturedCrash is null)
            {
                _values.Add(value);
            }
        }

        /// <summary>The furthest truncation begun before the crash (it may or may not have happened), or -1.</summary>
        public long TruncateBegun { get; private set; } = -1;

        public void BeginTruncate(long value)
        {
            if (device?.CapturedCrash is null)
            {
                TruncateBegun = value;
            }
        }

        public void AckTruncate(long value)
        {
            if (device?.CapturedCrash is null)
            {
                Truncated = value;
            }
        }
    }

    public (int Points, long Images) Run()
    {
        long drains;
        using (SimulatedDevice counting = Prepare())
        {
            Workload(counting.Mapping, new Progress(null));
            drains = counting.DrainCount;
        }
        long images = 0;
        for (long point = 1; point <= drains + 1; point++)
        {
            using SimulatedDevice device = Prepare();
            if (point <= drains)
            {
                device.CrashAtDrain = point;
            }
            var progress = new Progress(device);
            Workload(device.Mapping, progress);
            CrashState state = point <= drains
                ? device.CapturedCrash ?? throw new InvalidOperationException($"crash point {point} not reached: the workload is not deterministic")
                : device.Crash();
            foreach ((ImageStrategy strategy, ulong seed) in Images(state, point))
            {
                images++;
                CrashImage image = state.CreateImage(strategy, seed);
                using SimulatedDevice recovered = image.Open();
                try
                {
                    Check(recovered.Mapping, progress);
                }
                catch (Exception e)
                {
                    throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                        $"crash point {point} of {drains + 1}, image {strategy} seed 0x{seed:x}, {state.InFlight.Count} words in flight, {progress.Acked.Count} acknowledged: {e.GetType().Name}: {e.Message}\n{image.Describe(16)}"), e);
                }
            }
        }
        return ((int)drains + 1, images);
    }

    private SimulatedDevice Prepare()
    {
        SimulatedDevice device = SimulatedDevice.Create(DeviceLength);
        Setup(device.Mapping);
        device.ResetCounters();
        return device;
    }

    private IEnumerable<(ImageStrategy, ulong)> Images(CrashState state, long point)
        => ImagesAt(state, point, ExhaustiveLimit, RandomImages, Seed);

    /// <summary>
    /// The images checked at one crash point, shared by every sweep of this project: all of them when
    /// there are at most <paramref name="exhaustiveLimit"/>, otherwise the fixed ones plus seeded random ones.
    /// </summary>
    internal static IEnumerable<(ImageStrategy, ulong)> ImagesAt(CrashState state, long point, long exhaustiveLimit, int randomImages, ulong seed)
    {
        long count = state.CountImages();
        if (count <= exhaustiveLimit)
        {
            for (long i = 0; i < count; i++)
            {
                yield return (ImageStrategy.Exhaustive, (ulong)i);
            }
            yield break;
        }
        yield return (ImageStrategy.NothingSurvived, 0);
        if (state.InFlight.Any(w => w.WasFlushed))
        {
            yield return (ImageStrategy.FlushedSurvived, 0);
        }
        yield return (ImageStrategy.EverythingSurvived, 0);
        for (int i = 0; i < randomImages; i++)
        {
            yield return (ImageStrategy.Random, seed ^ ((ulong)point << 32) ^ (ulong)i * 0x9E3779B97F4A7C15);
        }
    }
}
