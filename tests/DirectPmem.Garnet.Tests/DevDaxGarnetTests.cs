using System.Net;
using DirectPmem.Driver;
using DirectPmem.Garnet.Tests.Support;
using DirectPmem.Mapping;
using Garnet;
using Garnet.server;
using StackExchange.Redis;
using Xunit;

namespace DirectPmem.Garnet.Tests;

/// <summary>
/// The real-kernel tier (tests/devdax-vm/garnet.sh): boot 1 starts Garnet on the guest's
/// /dev/dax0.0, writes, checkpoints, and writes more with AOF commit per operation; boot 2
/// recovers everything from the device. The same on a volume in one file on the guest's ext4
/// mounted -o dax (MAP_SYNC). Outside the guest (DIRECTPMEM_DEVDAX_TESTS / DIRECTPMEM_FSDAX_DIR unset) they skip.
/// </summary>
[Collection("Garnet")]
public sealed class DevDaxGarnetTests
{
    private const int Keys = 3_000;

    private static string DevicePath()
    {
        string? path = Environment.GetEnvironmentVariable("DIRECTPMEM_DEVDAX_TESTS");
        Assert.SkipWhen(string.IsNullOrEmpty(path), "needs a real device-DAX device: DIRECTPMEM_DEVDAX_TESTS=/dev/daxX.Y (tests/devdax-vm/garnet.sh sets it in a qemu guest)");
        return path!;
    }

    private static string RunId() => Environment.GetEnvironmentVariable("DIRECTPMEM_VM_RUN_ID") ?? "no-run-id";

    private static GarnetServer StartServer(PmemVolume volume, int port)
    {
        GarnetServerOptions options = GarnetOnPmem.DefaultOptions(port).UsePmemVolume(volume);
        options.EnableAOF = true;
        options.CommitFrequencyMs = 0;
        options.WaitForCommit = true;
        var server = new GarnetServer(options);
        server.Start();
        return server;
    }

    [Fact]
    public void First_boot_writes_checkpoints_and_appends_on_devdax()
    {
        string path = DevicePath();
        using DaxDevice device = DaxBus.Default.OpenCharDevice(path);
        // A fresh volume: this boot owns the device (the guest's NVDIMM file is new for each run).
        using (var map = device.Map())
            map.Publish(0, 0);
        using PmemVolume volume = PmemVolume.OpenOrCreateOnDevice(device);
        Assert.Equal(DirectPmem.Persistence.PersistGranularity.CacheLine, volume.Mapping.Granularity);
        int port = Ports.FreeLoopbackPort();
        using (StartServer(volume, port))
        {
            using ConnectionMultiplexer redis = ConnectionMultiplexer.Connect($"127.0.0.1:{port},allowAdmin=true,{RedisTimeouts.Options}");
            IDatabase db = redis.GetDatabase();
            Assert.True(db.StringSet("run-id", RunId()));
            GarnetServerTests.WriteKeys(db, 0, Keys / 2);
            Assert.Equal("OK", redis.GetServer(redis.GetEndPoints()[0]).Execute("SAVE").ToString());
            GarnetServerTests.WriteKeys(db, Keys / 2, Keys); // only in the AOF
            GarnetServerTests.AssertKeys(db, 0, Keys);
        }
    }

    private static string FsdaxFile()
    {
        string? dir = Environment.GetEnvironmentVariable("DIRECTPMEM_FSDAX_DIR");
        Assert.SkipWhen(string.IsNullOrEmpty(dir), "needs a directory on a DAX file system: DIRECTPMEM_FSDAX_DIR (tests/devdax-vm/garnet.sh sets it in a qemu guest)");
        return Path.Combine(dir!, "garnet.volume");
    }

    [Fact]
    public void First_boot_writes_checkpoints_and_appends_on_fsdax()
    {
        string path = FsdaxFile();
        File.Delete(path);
        using PmemFile file = PmemFile.Create(path, 64L << 20);
        using PmemVolume volume = PmemVolume.Create(file.Map(), ownsMapping: true);
        Assert.Equal(DirectPmem.Persistence.PersistGranularity.CacheLine, volume.Mapping.Granularity); // MAP_SYNC: flushes, no msync
        int port = Ports.FreeLoopbackPort();
        using (StartServer(volume, port))
        {
            using ConnectionMultiplexer redis = ConnectionMultiplexer.Connect($"127.0.0.1:{port},allowAdmin=true,{RedisTimeouts.Options}");
            IDatabase db = redis.GetDatabase();
            Assert.True(db.StringSet("run-id", RunId()));
            GarnetServerTests.WriteKeys(db, 0, 500);
            Assert.Equal("OK", redis.GetServer(redis.GetEndPoints()[0]).Execute("SAVE").ToString());
            GarnetServerTests.WriteKeys(db, 500, 1000);
        }
    }

    [Fact]
    public void Second_boot_recovers_everything_from_fsdax()
    {
        string path = FsdaxFile();
        Assert.SkipUnless(Environment.GetEnvironmentVariable("DIRECTPMEM_VM_PHASE") == "2", "runs in the second boot of tests/devdax-vm/garnet.sh");
        using PmemFile file = PmemFile.Open(path);
        using PmemVolume volume = PmemVolume.Open(file.Map(), ownsMapping: true);
        int port = Ports.FreeLoopbackPort();
        using (StartServer(volume, port))
        {
            using ConnectionMultiplexer redis = ConnectionMultiplexer.Connect($"127.0.0.1:{port},allowAdmin=true,{RedisTimeouts.Options}");
            IDatabase db = redis.GetDatabase();
            Assert.Equal(RunId(), (string?)db.StringGet("run-id"));
            GarnetServerTests.AssertKeys(db, 0, 1000);
        }
    }

    [Fact]
    public void Second_boot_recovers_everything_from_devdax()
    {
        string path = DevicePath();
        Assert.SkipUnless(Environment.GetEnvironmentVariable("DIRECTPMEM_VM_PHASE") == "2", "runs in the second boot of tests/devdax-vm/garnet.sh");
        using DaxDevice device = DaxBus.Default.OpenCharDevice(path);
        using PmemVolume volume = PmemVolume.OpenOrCreateOnDevice(device);
        int port = Ports.FreeLoopbackPort();
        using (StartServer(volume, port))
        {
            using ConnectionMultiplexer redis = ConnectionMultiplexer.Connect($"127.0.0.1:{port},allowAdmin=true,{RedisTimeouts.Options}");
            IDatabase db = redis.GetDatabase();
            Assert.Equal(RunId(), (string?)db.StringGet("run-id"));
            GarnetServerTests.AssertKeys(db, 0, Keys);
        }
    }
}
