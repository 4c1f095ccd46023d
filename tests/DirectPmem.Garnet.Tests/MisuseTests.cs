using DirectPmem.Garnet.Tests.Support;
using StackExchange.Redis;
using Xunit;

namespace DirectPmem.Garnet.Tests;

/// <summary>A device too small for Garnet's segments, and a device that fills up.</summary>
[Collection("Garnet")]
public sealed class MisuseTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void ADeviceTooSmallForTheSegmentSizeFailsAtStartUpNamingTheFix()
    {
        using EmulatedVolume volume = EmulatedVolume.Create(_dir.File("small.dax"), 16L << 20);
        Exception e = Assert.ThrowsAny<Exception>(() =>
        {
            using GarnetOnPmem garnet = GarnetOnPmem.Start(volume, o => { o.SegmentSize = "64m"; o.EnableAOF = true; });
        });
        PmemVolumeException cause = FindCause(e);
        Assert.Equal(PmemVolumeError.TooSmall, cause.Error);
        Assert.Contains("67108864-byte segments", cause.Message, StringComparison.Ordinal);
        Assert.Contains("--segment", cause.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheSampleServerRefusesATooSmallDeviceAtStartUpWithExitCode1()
    {
        var error = Assert.Throws<InvalidOperationException>(() => ServerProcess.Start("--device", _dir.File("tiny.dax"), "--size", "16m", "--port", "0", "--segment", "64m"));
        Assert.Contains("exit 1", error.Message, StringComparison.Ordinal);
        Assert.Contains("PmemVolumeException", error.Message, StringComparison.Ordinal);
        Assert.Contains("--segment", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AFullDeviceFailsWritesAtTheClientAndLosesNothingAcknowledged()
    {
        string path = _dir.File("full.dax");
        var acknowledged = new Dictionary<string, string>(StringComparer.Ordinal);
        Exception? failure = null;
        var garnet = GarnetOnPmem.Start(EmulatedVolume.Create(path, 24L << 20), o =>
        {
            o.EnableAOF = true;
            o.CommitFrequencyMs = 0;
            o.WaitForCommit = true;
            o.SegmentSize = "4m";
            o.ObjectLogSegmentSize = "4m";
            o.AofSegmentSize = "4m";
        });
        try
        {
            using ConnectionMultiplexer redis = ConnectionMultiplexer.Connect($"127.0.0.1:{garnet.Port},abortConnect=true,{RedisTimeouts.Options}");
            IDatabase db = redis.GetDatabase();
            string filler = new('f', 1000);
            for (int i = 0; i < 200_000 && failure is null; i++)
            {
                string key = $"k{i}";
                try
                {
                    if (db.StringSet(key, filler + i))
                        acknowledged[key] = filler + i;
                }
                catch (Exception e) when (e is RedisServerException or RedisTimeoutException or RedisConnectionException)
                {
                    failure = e;
                }
            }
            string report = $"{acknowledged.Count} SETs acknowledged, then: {failure?.GetType().Name}: {failure?.Message}; free {garnet.Volume.Volume.FreeBytes}";
            TestContext.Current.TestOutputHelper?.WriteLine(report);
            // Garnet drops the connection when the AOF write fails with ENOSPC (seen: RedisConnectionException,
            // SocketClosed); the SET in flight is not acknowledged.
            Assert.NotNull(failure);
            Assert.True(acknowledged.Count > 100);
            Assert.Equal(0, garnet.Volume.Volume.FreeBytes);
        }
        finally
        {
            garnet.Dispose();
        }
        garnet = GarnetOnPmem.Start(EmulatedVolume.Open(path), o =>
        {
            o.EnableAOF = true;
            o.CommitFrequencyMs = 0;
            o.WaitForCommit = true;
            o.SegmentSize = "4m";
            o.ObjectLogSegmentSize = "4m";
            o.AofSegmentSize = "4m";
        });
        using (garnet)
        {
            using ConnectionMultiplexer redis = ConnectionMultiplexer.Connect($"127.0.0.1:{garnet.Port},abortConnect=true,{RedisTimeouts.Options}");
            IDatabase db = redis.GetDatabase();
            int missing = acknowledged.Count(kv => db.StringGet(kv.Key) != kv.Value);
            Assert.Equal(0, missing);
        }
    }

    private static PmemVolumeException FindCause(Exception e)
    {
        for (Exception? current = e; current is not null; current = current.InnerException)
        {
            if (current is PmemVolumeException p)
                return p;
            if (current is AggregateException a && a.InnerExceptions.Count > 0)
                return FindCause(a.InnerExceptions[0]);
        }
        throw new Xunit.Sdk.XunitException($"no PmemVolumeException in {e}");
    }
}
