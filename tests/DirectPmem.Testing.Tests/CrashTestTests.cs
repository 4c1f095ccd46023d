using DirectPmem.Mapping;
using Xunit;
using static DirectPmem.Testing.Tests.Pm;

namespace DirectPmem.Testing.Tests;

public sealed class CrashTestTests
{
    // The flag is stored early and flushed last: correct only if no cache ever evicts it early.
    private static void StoreFlagEarly(DaxMapping map)
    {
        Store(map, 0, 1);
        for (int i = 0; i < 4; i++)
        {
            Store(map, 512 + i * 8, (ulong)i + 100);
        }
        map.Persist(512, 32);
        map.Persist(0, 8);
    }

    private static void RecoverFlag(DaxMapping map)
    {
        if (Load(map, 0) == 1)
        {
            for (int i = 0; i < 4; i++)
            {
                Assert.Equal((ulong)i + 100, Load(map, 512 + i * 8));
            }
        }
    }

    [Fact]
    public void AnEarlyStoreThatOnlyEvictionCanPersistIsCaughtOnlyWithEviction()
    {
        CrashTestResult with = new CrashTest { DeviceLength = 4096, Workload = StoreFlagEarly, Recover = RecoverFlag }.Run();
        CrashTestResult without = new CrashTest { DeviceLength = 4096, Workload = StoreFlagEarly, Recover = RecoverFlag, IncludeEviction = false }.Run();

        Assert.False(with.Passed);
        Assert.Contains("(new, evicted)", with.Failures[0].ToString(), StringComparison.Ordinal);
        Assert.True(without.Passed, without.Summary());
    }

    [Fact]
    public void LargeCrashesUseTheFixedAndRandomImagesAndSmallOnesAreExhaustive()
    {
        CrashTestResult result = new CrashTest
        {
            DeviceLength = 4096,
            RandomImages = 10,
            ExhaustiveLimit = 16,
            Workload = map =>
            {
                for (int i = 0; i < 4; i++)
                {
                    Store(map, i * 8, 1);     // 4 words: 16 images, exhaustive
                }
                map.Persist(0, 32);
                for (int i = 0; i < 5; i++)
                {
                    Store(map, 64 + i * 8, 1); // 5 words: 32 images, over the limit
                }
                map.Persist(64, 40);
            },
            Recover = _ => { },
        }.Run();
        Assert.True(result.Passed);
        Assert.Equal([4, 5, 0], result.Statistics.InFlightWordsPerCrash);
        // 16 exhaustive + (nothing, flushed, everything + 10 random) + 1 image of the settled end.
        Assert.Equal(16 + 13 + 1, result.Statistics.ImagesTried);
    }

    [Fact]
    public void SetupBarriersAreNotCrashPointsAndWarningsDoNotFailTheSweep()
    {
        CrashTestResult result = new CrashTest
        {
            DeviceLength = 4096,
            Setup = map =>
            {
                for (int i = 0; i < 3; i++)
                {
                    Store(map, i * 64, 7);
                    map.Persist(i * 64, 8);
                }
            },
            Workload = map =>
            {
                map.Persist(0, 8);             // redundant: nothing changed since setup
                Store(map, 1024, 9);           // never flushed
            },
            Recover = map => Assert.Equal(7UL, Load(map, 64)),
        }.Run();
        Assert.True(result.Passed, result.Summary());
        Assert.Equal(1, result.Statistics.Drains);
        Assert.Equal(2, result.Statistics.CrashPoints);
        Assert.Equal(1, result.Diagnostics.RedundantFlushes);
        Assert.Equal(1, result.Diagnostics.NeverFlushedLines);
        Assert.Contains("1 lines never flushed", result.Summary(), StringComparison.Ordinal);
    }

    [Fact]
    public void StopAtFirstFailureOffCollectsEveryFailingImage()
    {
        CrashTestResult result = new CrashTest
        {
            DeviceLength = 4096,
            StopAtFirstFailure = false,
            Workload = map =>
            {
                Store(map, 0, 1);
                Store(map, 8, 1);
                map.Persist(0, 16);
            },
            Recover = map => Assert.Equal(Load(map, 0), Load(map, 8)),
        }.Run();
        // Before the drain: 4 images, 2 of them torn; after it: 1 settled image.
        Assert.Equal(5, result.Statistics.ImagesTried);
        Assert.Equal(2, result.Failures.Count);
        Assert.Equal(2, result.Statistics.Failures);
    }

    [Fact]
    public void ARecoveryThatDisposesItsMappingGetsAFreshDeviceForTheNextImage()
    {
        int recovered = 0;
        CrashTestResult result = new CrashTest
        {
            DeviceLength = 4096,
            Workload = map =>
            {
                Store(map, 0, 5);
                map.Persist(0, 8);
            },
            Recover = map =>
            {
                ulong value = Load(map, 0);
                Assert.True(value is 0 or 5);
                recovered++;
                map.Dispose();
            },
        }.Run();
        Assert.True(result.Passed, result.Summary());
        Assert.Equal(3, recovered);                     // 2 images before the drain, 1 at the end
        Assert.Equal(3, result.Statistics.ImagesTried);
    }

    [Fact]
    public void ReplaySettingsMustComeTogether()
    {
        var test = new CrashTest { Workload = _ => { }, Recover = _ => { }, OnlyStrategy = ImageStrategy.Random };
        Assert.Throws<ArgumentException>("OnlySeed", () => test.Run());
    }
}
