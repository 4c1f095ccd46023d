using DirectPmem.Garnet.Tests.Support;
using StackExchange.Redis;
using Xunit;

namespace DirectPmem.Garnet.Tests;

/// <summary>A real Redis client (StackExchange.Redis) against an in-process Garnet on a DirectPmem volume.</summary>
[Collection("Garnet")]
public sealed class GarnetServerTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private EmulatedVolume NewVolume(long size = 64L << 20) => EmulatedVolume.Create(_dir.File("garnet.dax"), size);

    [Fact]
    public void StringCountersAndHashesWork()
    {
        using GarnetOnPmem garnet = GarnetOnPmem.Start(NewVolume(), o => o.EnableAOF = true);
        using ConnectionMultiplexer redis = garnet.Connect();
        IDatabase db = redis.GetDatabase();

        Assert.True(db.StringSet("greeting", "hello, pmem"));
        Assert.Equal("hello, pmem", (string?)db.StringGet("greeting"));
        Assert.Equal(1, db.StringIncrement("counter"));
        Assert.Equal(42, db.StringIncrement("counter", 41));
        db.HashSet("user:1", [new HashEntry("name", "ada"), new HashEntry("lang", "c#")]);
        Assert.Equal("ada", (string?)db.HashGet("user:1", "name"));
        Assert.Equal(2, db.HashLength("user:1"));
        Assert.True(db.KeyDelete("greeting"));
        Assert.False(db.KeyExists("greeting"));
    }

    [Fact]
    public void SaveThenRestartRecoversEveryKeyFromTheCheckpointIncludingWhatSpilledToTheDevice()
    {
        const int Keys = 20_000; // ~20 k records of ~100 B overflow the 2 MiB log memory onto the volume
        string path;
        using (GarnetOnPmem garnet = GarnetOnPmem.Start(NewVolume(), o => o.EnableAOF = false))
        {
            path = garnet.Volume.Path;
            using ConnectionMultiplexer redis = garnet.Connect();
            IDatabase db = redis.GetDatabase();
            WriteKeys(db, 0, Keys);
            db.HashSet("h", "f", "v");
            Assert.Equal("OK", redis.GetServer(redis.GetEndPoints()[0]).Execute("SAVE").ToString());
            Assert.Contains(garnet.Volume.Volume.GetDeviceNames(), n => n.StartsWith("checkpoints/", StringComparison.Ordinal));
            Assert.Contains("log/Store/hlog", garnet.Volume.Volume.GetDeviceNames());
        }

        using (GarnetOnPmem again = GarnetOnPmem.Start(EmulatedVolume.Open(path), o => o.EnableAOF = false))
        {
            using ConnectionMultiplexer redis = again.Connect();
            IDatabase db = redis.GetDatabase();
            AssertKeys(db, 0, Keys);
            Assert.Equal("v", (string?)db.HashGet("h", "f"));
        }
    }

    [Fact]
    public void AofReplayRecoversWritesMadeAfterTheLastCheckpointAndWithoutAny()
    {
        string path;
        using (GarnetOnPmem garnet = GarnetOnPmem.Start(NewVolume(), o => { o.EnableAOF = true; o.CommitFrequencyMs = 0; o.WaitForCommit = true; }))
        {
            path = garnet.Volume.Path;
            using ConnectionMultiplexer redis = garnet.Connect();
            IDatabase db = redis.GetDatabase();
            WriteKeys(db, 0, 2_000);
            Assert.Equal(5, db.StringIncrement("n", 5));
            db.HashSet("h", "f", "v1");
            Assert.Contains(garnet.Volume.Volume.GetDeviceNames(), n => n.Contains("aof.log", StringComparison.Ordinal));
        }

        // No checkpoint was ever taken: everything comes back from the AOF on the volume.
        using (GarnetOnPmem again = GarnetOnPmem.Start(EmulatedVolume.Open(path), o => { o.EnableAOF = true; o.CommitFrequencyMs = 0; o.WaitForCommit = true; }))
        {
            using ConnectionMultiplexer redis = again.Connect();
            IDatabase db = redis.GetDatabase();
            AssertKeys(db, 0, 2_000);
            Assert.Equal(6, db.StringIncrement("n"));
            Assert.Equal("v1", (string?)db.HashGet("h", "f"));
            // A checkpoint, then more writes that only the AOF holds.
            Assert.Equal("OK", redis.GetServer(redis.GetEndPoints()[0]).Execute("SAVE").ToString());
            WriteKeys(db, 2_000, 3_000);
            db.HashSet("h", "f", "v2");
        }

        using (GarnetOnPmem third = GarnetOnPmem.Start(EmulatedVolume.Open(path), o => { o.EnableAOF = true; o.CommitFrequencyMs = 0; o.WaitForCommit = true; }))
        {
            using ConnectionMultiplexer redis = third.Connect();
            IDatabase db = redis.GetDatabase();
            AssertKeys(db, 0, 3_000);
            Assert.Equal("6", (string?)db.StringGet("n"));
            Assert.Equal("v2", (string?)db.HashGet("h", "f"));
        }
    }

    internal static void WriteKeys(IDatabase db, int from, int to)
    {
        const int Batch = 500;
        for (int start = from; start < to; start += Batch)
        {
            var pairs = new KeyValuePair<RedisKey, RedisValue>[Math.Min(Batch, to - start)];
            for (int i = 0; i < pairs.Length; i++)
                pairs[i] = new($"key:{start + i}", Value(start + i));
            Assert.True(db.StringSet(pairs));
        }
    }

    internal static void AssertKeys(IDatabase db, int from, int to)
    {
        const int Batch = 500;
        for (int start = from; start < to; start += Batch)
        {
            var keys = new RedisKey[Math.Min(Batch, to - start)];
            for (int i = 0; i < keys.Length; i++)
                keys[i] = $"key:{start + i}";
            RedisValue[] values = db.StringGet(keys);
            for (int i = 0; i < keys.Length; i++)
                Assert.True(values[i] == Value(start + i), $"key:{start + i} is '{values[i]}' after recovery");
        }
    }

    internal static string Value(int i) => $"value-{i}-" + new string((char)('a' + (i % 26)), 64);
}
