using DirectPmem.Mapping;
using DirectPmem.Testing;

namespace DirectPmem.Storage.Tests.Transactions;

/// <summary>
/// The storage tests' shape of the one acknowledgement-aware sweep, <see cref="AckCrashSweep"/> (DirectPmem.Testing):
/// a workload that calls <c>ack()</c> after each operation returns, and a check that receives how many operations were
/// acknowledged before the crash. It has no loop of its own: the crash points, the images and what counts as
/// acknowledged (an acknowledgement made before the crash was captured) are the library's.
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

    public sealed record Result(long Drains, long Images, int Acks, IReadOnlyList<string> Failures)
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
        var sweep = new AckCrashSweep
        {
            DeviceLength = DeviceLength,
            Setup = Setup,
            Workload = (map, acks) =>
            {
                long operation = 0;
                Workload(map, () => acks.Acknowledge(operation++));
            },
            Check = (map, acks) => Recover(map, acks.GetAcknowledged().Count),
            RandomImages = RandomImages,
            ExhaustiveLimit = ExhaustiveLimit,
            Seed = Seed,
            // Failures are returned, not thrown: a negative control expects them.
            MaxFailures = stopAtFirstFailure ? 1 : int.MaxValue,
        };
        AckCrashSweepResult result = sweep.Run();
        return new Result(result.CrashPoints - 1, result.Images, (int)result.Acknowledged, result.Failures);
    }
}
