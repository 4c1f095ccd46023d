using DirectPmem.Mapping;
using Xunit;
using static DirectPmem.Testing.Tests.Pm;

namespace DirectPmem.Testing.Tests;

/// <summary>
/// The acknowledgement-aware sweep: a check sees exactly what returned before its crash, a
/// correct workload passes every image, and one that acknowledges before its data is durable is
/// caught (the negative control).
/// </summary>
public sealed class AckCrashSweepTests
{
    private const int Slots = 6;

    // Writes value i+1 into slot i, persists it, and acknowledges i; the broken variant acknowledges
    // while the value is only flushed (the drain comes with the next slot).
    private static void Workload(DaxMapping map, AckLog acks, bool broken)
    {
        for (int i = 0; i < Slots; i++)
        {
            acks.Begin(i);
            Store(map, i * 64, (ulong)i + 1);
            if (broken)
            {
                map.Flush(i * 64, 8);
            }
            else
            {
                map.Persist(i * 64, 8);
            }
            acks.Acknowledge(i);
        }
        map.Drain();
    }

    private static void Check(DaxMapping map, AckLog acks)
    {
        foreach (long i in acks.GetAcknowledged())
        {
            Assert.Equal((ulong)i + 1, Load(map, i * 64));
        }
        Assert.True(acks.GetAcknowledged().Count <= acks.GetBegun().Count);
    }

    [Fact]
    public void ACorrectWorkloadPassesEveryImageAndEachCheckSeesOnlyWhatReturnedBeforeItsCrash()
    {
        var seen = new List<int>();
        AckCrashSweepResult result = new AckCrashSweep
        {
            DeviceLength = 4096,
            Workload = (map, acks) => Workload(map, acks, broken: false),
            Check = (map, acks) =>
            {
                Check(map, acks);
                seen.Add(acks.GetAcknowledged().Count);
            },
        }.Run();
        Assert.Equal(Slots + 2, result.CrashPoints); // a drain per slot, the final one, and the end
        Assert.True(result.Images >= result.CrashPoints);
        // Crash before drain k: the k-1 slots whose drains completed were acknowledged; at the end, all.
        Assert.Equal(0, seen[0]);
        Assert.Equal(Slots, seen[^1]);
        Assert.Equal(seen.Order(), seen);
    }

    [Fact]
    public void AWorkloadThatAcknowledgesBeforeItsDataIsDurableIsCaught()
    {
        var sweep = new AckCrashSweep
        {
            DeviceLength = 4096,
            Workload = (map, acks) => Workload(map, acks, broken: true),
            Check = Check,
        };
        InvalidOperationException e = Assert.Throws<InvalidOperationException>(() => sweep.Run());
        Assert.Contains("Crash point", e.Message, StringComparison.Ordinal);
        Assert.NotNull(e.InnerException);
    }

    [Fact]
    public void WithMaxFailuresTheFailingImagesAreReturnedAndTheSweepStopsAtThatMany()
    {
        AckCrashSweepResult all = new AckCrashSweep
        {
            DeviceLength = 4096,
            Workload = (map, acks) => Workload(map, acks, broken: true),
            Check = Check,
            MaxFailures = int.MaxValue,
        }.Run();
        Assert.True(all.Failures.Count > 1, $"{all.Failures.Count} failing image(s)");
        Assert.Equal(Slots, all.Acknowledged);
        Assert.All(all.Failures, f => Assert.StartsWith("Crash point ", f, StringComparison.Ordinal));
        Assert.Throws<InvalidOperationException>(all.ThrowIfFailed);

        AckCrashSweepResult first = new AckCrashSweep
        {
            DeviceLength = 4096,
            Workload = (map, acks) => Workload(map, acks, broken: true),
            Check = Check,
            MaxFailures = 1,
        }.Run();
        Assert.Single(first.Failures);
        Assert.True(first.Images < all.Images, $"stopped after {first.Images} of {all.Images} images");
    }

    [Fact]
    public void ChannelsKeepKindsOfOperationApart()
    {
        AckCrashSweepResult result = new AckCrashSweep
        {
            DeviceLength = 4096,
            Workload = (map, acks) =>
            {
                Store(map, 0, 7);
                map.Persist(0, 8);
                acks.Acknowledge(1, "a");
                acks.Begin(2, "b");
            },
            Check = (map, acks) =>
            {
                if (acks.GetAcknowledged("a").Count == 1)
                {
                    Assert.Equal(7UL, Load(map, 0));
                    Assert.Equal([2L], acks.GetBegun("b"));
                }
                Assert.Empty(acks.GetAcknowledged());
                Assert.Empty(acks.GetAcknowledged("b"));
            },
        }.Run();
        Assert.Equal(2, result.CrashPoints);
    }
}
