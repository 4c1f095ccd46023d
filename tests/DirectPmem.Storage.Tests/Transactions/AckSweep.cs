using System.Text;
using DirectPmem.Mapping;
using DirectPmem.Testing;

namespace DirectPmem.Storage.Tests.Transactions;

/// <summary>
/// A crash sweep that knows which operations were acknowledged before each crash. Like
/// <see cref="CrashTest"/> (whose images and crash points it uses: the state just before every
/// drain completes, and the end), but the workload reports each acknowledged operation through
/// <c>ack()</c>; the harness records the drain count at that moment, so that for a crash before
/// drain N it knows the operations whose drains had all completed (drain count &lt; N) and passes
/// their number to the check. The check then asserts "every acknowledged operation is there, and
/// at most the one in flight beyond it".
/// </summary>
internal sealed class AckSweep
{
    public long DeviceLength { get; init; } = 64 * 1024;

    public Action<DaxMapping>? Setup { get; init; }

    public required Action<DaxMapping, Action> Workload { get; init; }

    /// <summary>Recovery and checks on an image; the int is the number of acknowledged operations.</summary>
    public required Action<DaxMapping, int> Recover { get; init; }

    public int RandomImages { get; init; } = TxKnobs.RandomImages;

    public long ExhaustiveLimit { get; init; } = TxKnobs.ExhaustiveLimit;

    public ulong Seed { get; init; } = 0x7A5EED;

    public sealed record Result(long Drains, long Images, int Acks, List<string> Failures)
    {
        public void ThrowIfFailed()
        {
            if (Failures.Count > 0)
            {
                throw new Xunit.Sdk.XunitException($"{Failures.Count} failing image(s) out of {Images} ({Drains} drains); first:\n{Failures[0]}");
            }
        }
    }

    public Result Run(bool stopAtFirstFailure = true)
    {
        long drains;
        int totalAcks;
        using (SimulatedDevice counting = Prepare())
        {
            int acks = 0;
            Workload(counting.Mapping, () => acks++);
            drains = counting.DrainCount;
            totalAcks = acks;
        }
        var failures = new List<string>();
        long images = 0;
        for (long point = 1; point <= drains + 1; point++)
        {
            var ackDrains = new List<long>();
            CrashState state;
            using (SimulatedDevice device = Prepare())
            {
                if (point <= drains)
                {
                    device.CrashAtDrain = point;
                }
                Workload(device.Mapping, () => ackDrains.Add(device.DrainCount));
                state = point <= drains
                    ? device.CapturedCrash ?? throw new InvalidOperationException("workload is not deterministic")
                    : device.Crash();
            }
            int acked = ackDrains.Count(d => d < point);
            foreach ((ImageStrategy strategy, ulong seed) in ImagesOf(state, point))
            {
                images++;
                CrashImage image = state.CreateImage(strategy, seed);
                using SimulatedDevice recovered = image.Open();
                try
                {
                    Recover(recovered.Mapping, acked);
                }
                catch (Exception e)
                {
                    failures.Add($"crash point {point} ({state.Point}), {acked} acknowledged, image {strategy} seed 0x{seed:x}:\n{e}\n{image.Describe(16)}");
                    if (stopAtFirstFailure)
                    {
                        return new Result(drains, images, totalAcks, failures);
                    }
                }
            }
        }
        return new Result(drains, images, totalAcks, failures);
    }

    private SimulatedDevice Prepare()
    {
        SimulatedDevice device = SimulatedDevice.Create(DeviceLength);
        Setup?.Invoke(device.Mapping);
        device.ResetCounters();
        return device;
    }

    private IEnumerable<(ImageStrategy, ulong)> ImagesOf(CrashState state, long point)
        => CrashSweep.ImagesAt(state, point, ExhaustiveLimit, RandomImages, Seed);
}
