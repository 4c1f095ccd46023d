using DirectPmem.Mapping;
using DirectPmem.Testing;
using Xunit;

namespace DirectPmem.Storage.Tests;

/// <summary>Structures the pool does not format itself (a Garnet volume): the structure header the pool writes and judges.</summary>
public sealed class PoolStructureTests(ITestOutputHelper output)
{
    private const string Layout = "structures";
    private static readonly byte[] s_parameters = [2, 0, 0, 0, 7, 7, 7];

    [Fact]
    public void AStructureReopensByNameAndKindWithItsParametersAndItsFormattedBody()
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(1 << 20);
        long body;
        using (PmemPool pool = TestPools.Create(mapping, Layout))
        {
            pool.CreateLog("wal", 64 << 10).Dispose();
            PoolStructure created = pool.CreateStructure("volume", PoolStructureKind.GarnetVolume, 14_000, s_parameters, s =>
            {
                Assert.Null(s.Pool.Find("volume")); // formatted before the directory names it
                s.Pool.Mapping.Write("body"u8, s.BodyOffset);
            });
            Assert.Equal(16384, created.Entry.Length); // rounded up to 4 KiB
            Assert.Equal(created.Entry.Offset + 8192, created.BodyOffset);
            Assert.Equal(8192, created.BodyLength);
            body = created.BodyOffset;
        }
        using (PmemPool pool = PmemPool.Open(mapping, Layout))
        {
            PoolStructure opened = pool.OpenStructure("volume", PoolStructureKind.GarnetVolume);
            Assert.Equal(s_parameters, opened.Parameters.ToArray());
            Assert.Equal(body, opened.BodyOffset);
            Assert.Equal(PoolHeaderRepair.None, opened.HeaderRepair);
            Assert.Equal("body"u8.ToArray(), pool.Mapping.GetReadOnlySpan(body, 4).ToArray());
            Assert.Equal(PoolDirectoryError.WrongKind, Assert.Throws<PoolDirectoryException>(() => pool.OpenStructure("wal", PoolStructureKind.GarnetVolume)).Error);
            Assert.Equal(PoolDirectoryError.NotFound, Assert.Throws<PoolDirectoryException>(() => pool.OpenStructure("nothing", PoolStructureKind.GarnetVolume)).Error);
        }
    }

    [Theory]
    [InlineData(PoolStructureKind.Log)]
    [InlineData(PoolStructureKind.TransactionalHeap)]
    [InlineData(PoolStructureKind.Reserved)]
    public void KindsThePoolFormatsOrLeavesBareAreNotCreatedWithAStructureHeader(PoolStructureKind kind)
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(1 << 20);
        using PmemPool pool = TestPools.Create(mapping, Layout);
        ArgumentException e = Assert.Throws<ArgumentException>(() => pool.CreateStructure("x", kind, 64 << 10, [], _ => { }));
        Assert.Equal("kind", e.ParamName);
        Assert.Empty(pool.Structures);
    }

    [Fact]
    public void TooManyParameterBytesAndAFormatThatThrowsNameNothing()
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(1 << 20);
        using PmemPool pool = TestPools.Create(mapping, Layout);
        Assert.Equal("parameters", Assert.Throws<ArgumentOutOfRangeException>(
            () => pool.CreateStructure("v", PoolStructureKind.GarnetVolume, 64 << 10, new byte[257], _ => { })).ParamName);
        Assert.Throws<InvalidOperationException>(() => pool.CreateStructure("v", PoolStructureKind.GarnetVolume, 64 << 10, s_parameters,
            _ => throw new InvalidOperationException("the owner's format failed")));
        Assert.Empty(pool.Structures);
        // The range is free again: the next structure takes it.
        PoolStructure again = pool.CreateStructure("v", PoolStructureKind.GarnetVolume, 64 << 10, s_parameters, _ => { });
        Assert.Equal(pool.DataOffset, again.Entry.Offset);
    }

    [Fact]
    public void AStructureHeaderFromAnotherPoolIsRefused()
    {
        using DaxMapping first = DaxMapping.CreateAnonymous(1 << 20);
        using DaxMapping second = DaxMapping.CreateAnonymous(1 << 20);
        using PmemPool a = TestPools.Create(first, Layout);
        using PmemPool b = TestPools.Create(second, Layout);
        PoolStructure sa = a.CreateStructure("v", PoolStructureKind.GarnetVolume, 64 << 10, s_parameters, _ => { });
        PoolStructure sb = b.CreateStructure("v", PoolStructureKind.GarnetVolume, 64 << 10, s_parameters, _ => { });
        Assert.Equal(sa.Entry.Offset, sb.Entry.Offset);
        second.Write(first.GetReadOnlySpan(sa.Entry.Offset, 8192), sb.Entry.Offset); // both copies of a's header into b
        PoolFormatException e = Assert.Throws<PoolFormatException>(() => b.OpenStructure("v", PoolStructureKind.GarnetVolume));
        Assert.Equal(PoolHeaderField.StructureHeader, e.Field);
        Assert.Contains($"belongs to pool {a.Uuid}", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CreatingAStructureIsBeforeOrAfterAtEveryCrashPoint()
    {
        CrashTestResult result = new CrashTest
        {
            DeviceLength = 512 << 10,
            RandomImages = Knobs.CrashRandomImages,
            Setup = map => TestPools.Create(map, Layout).Dispose(),
            Workload = map =>
            {
                using PmemPool pool = PmemPool.Open(map, Layout);
                pool.CreateStructure("volume", PoolStructureKind.GarnetVolume, 32 << 10, s_parameters, s => s.Pool.Mapping.Write("formatted"u8, s.BodyOffset));
            },
            Recover = map =>
            {
                using PmemPool pool = PmemPool.Open(map, Layout);
                if (pool.Find("volume") is null)
                {
                    Assert.Empty(pool.Structures);
                    return;
                }
                // Named means whole: both header copies intact (nothing to repair) and the body formatted.
                PoolStructure s = pool.OpenStructure("volume", PoolStructureKind.GarnetVolume);
                Assert.Equal(PoolHeaderRepair.None, s.HeaderRepair);
                Assert.Equal(s_parameters, s.Parameters.ToArray());
                Assert.Equal("formatted"u8.ToArray(), pool.Mapping.GetReadOnlySpan(s.BodyOffset, 9).ToArray());
            },
        }.Run();
        output.WriteLine(result.Summary());
        Knobs.Record($"sweep pool-structure: {result.Statistics.CrashPoints} crash points, {result.Statistics.ImagesTried} images");
        result.ThrowIfFailed();
        Assert.True(result.Statistics.ImagesTried >= 50, $"only {result.Statistics.ImagesTried} images");
    }
}
