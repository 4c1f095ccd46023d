using DirectPmem.Mapping;
using DirectPmem.Testing;

namespace DirectPmem.Storage.Tests;

/// <summary>
/// The log's crash sweeps: DirectPmem.Testing's <see cref="AckCrashSweep"/> (a sweep that knows
/// which operations returned before the crash), with a <see cref="Progress"/> view of its
/// <see cref="AckLog"/> for appends (the default channel) and truncations.
/// </summary>
internal sealed class CrashSweep
{
    private const string TruncateChannel = "truncate";

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
    internal sealed class Progress(AckLog acks)
    {
        /// <summary>Acknowledged appends, in order.</summary>
        public IReadOnlyList<long> Acked => acks.GetAcknowledged();

        /// <summary>The last acknowledged truncation point, or -1.</summary>
        public long Truncated => acks.GetAcknowledged(TruncateChannel) is { Count: > 0 } t ? t[^1] : -1;

        /// <summary>The furthest truncation begun before the crash (it may or may not have happened), or -1.</summary>
        public long TruncateBegun => acks.GetBegun(TruncateChannel) is { Count: > 0 } t ? t[^1] : -1;

        public void Ack(long value) => acks.Acknowledge(value);

        public void BeginTruncate(long value) => acks.Begin(value, TruncateChannel);

        public void AckTruncate(long value) => acks.Acknowledge(value, TruncateChannel);
    }

    public (int Points, long Images) Run()
    {
        AckCrashSweepResult result = new AckCrashSweep
        {
            DeviceLength = DeviceLength,
            Setup = Setup,
            Workload = (map, acks) => Workload(map, new Progress(acks)),
            Check = (map, acks) => Check(map, new Progress(acks)),
            RandomImages = RandomImages,
            ExhaustiveLimit = ExhaustiveLimit,
            Seed = Seed,
        }.Run();
        return ((int)result.CrashPoints, result.Images);
    }

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
