using DirectPmem.Mapping;
using DirectPmem.Testing;
using Xunit;

namespace DirectPmem.Storage.Tests;

/// <summary>CrashTest sweeps of pool creation, open, root update, clean close and header repair.</summary>
public sealed class PoolCrashTests(ITestOutputHelper output)
{
    private const string Layout = "crash-pool";

    private void Run(string name, CrashTest test, int minimumImages)
    {
        CrashTestResult result = test.Run();
        output.WriteLine($"{name}: {result.Summary()}");
        Knobs.Record($"sweep pool-{name}: {result.Statistics.CrashPoints} crash points, {result.Statistics.ImagesTried} images");
        result.ThrowIfFailed();
        Assert.True(result.Statistics.ImagesTried >= minimumImages, $"{name} tried only {result.Statistics.ImagesTried} images");
    }

    private static void HeaderIsIntactAfterOpen(DaxMapping map)
    {
        Assert.True(PoolHeader.HasSignature(map.GetReadOnlySpan(0, 4096)) && PoolHeader.ChecksumMatches(map.GetReadOnlySpan(0, 4096)));
        Assert.True(map.GetReadOnlySpan(0, 4096).SequenceEqual(map.GetReadOnlySpan(4096, 4096)), "the copies differ after an open");
    }

    [Fact]
    public void CreateIsAllOrNothing()
    {
        Run("create", new CrashTest
        {
            RandomImages = Knobs.CrashRandomImages,
            Workload = map => TestPools.Create(map, Layout, new PoolCreateOptions { ReservedLength = 4096 }).Dispose(),
            Recover = map =>
            {
                PmemPool pool;
                try
                {
                    pool = PmemPool.Open(map, Layout);
                }
                catch (PoolFormatException e) when (e.Field == PoolHeaderField.Signature)
                {
                    return; // the creation had not completed: no pool
                }
                Assert.Equal(Layout, pool.Layout);
                Assert.Equal(8192 + 8192 + 4096, pool.DataOffset);
                Assert.True(map.GetReadOnlySpan(16384, 4096).IndexOfAnyExcept((byte)0) < 0, "the reserved area after the directory is not zero");
                Assert.Empty(pool.Structures);
                HeaderIsIntactAfterOpen(map);
                pool.Dispose();
                Assert.True(PmemPool.Open(map, Layout).WasCleanlyClosed);
            },
        }, 100);
    }

    [Fact]
    public void OpenSetRootAndCleanCloseAreAtomic()
    {
        Run("open-root-close", new CrashTest
        {
            RandomImages = Knobs.CrashRandomImages,
            Setup = map => TestPools.Create(map, Layout).Dispose(),
            Workload = map =>
            {
                using PmemPool pool = PmemPool.Open(map, Layout);
                for (int i = 1; i <= 8; i++)
                {
                    pool.SetRoot(pool.DataOffset + 16 * i);
                }
            },
            Recover = map =>
            {
                using PmemPool pool = PmemPool.Open(map, Layout);
                Assert.True(pool.RootOffset == 0 || (pool.RootOffset - pool.DataOffset) % 16 == 0 && pool.RootOffset <= pool.DataOffset + 128, $"root {pool.RootOffset}");
                if (pool.WasCleanlyClosed)
                {
                    // Clean: the crash hit before this open marked the pool in use, or after the clean close.
                    Assert.True(pool.RootOffset == 0 || pool.RootOffset == pool.DataOffset + 128, $"clean with root {pool.RootOffset}");
                }
                HeaderIsIntactAfterOpen(map);
            },
        }, 120);
    }

    [Fact]
    public void RepairOfEitherCopyIsCrashSafe()
    {
        foreach (long damaged in new long[] { 0, 4096 })
        {
            Run($"repair@{damaged}", new CrashTest
            {
                RandomImages = Knobs.CrashRandomImages,
                Setup = map =>
                {
                    TestPools.Create(map, Layout).Dispose();
                    map.GetSpan(damaged + 500, 1)[0] ^= 0x5A;
                    map.Persist(damaged + 500, 1);
                },
                Workload = map => PmemPool.Open(map, Layout).Dispose(),
                Recover = map =>
                {
                    using PmemPool pool = PmemPool.Open(map, Layout);
                    HeaderIsIntactAfterOpen(map);
                },
            }, 30);
        }
    }
}
