using System.Diagnostics;
using DirectPmem.Garnet.Tests.Support;
using Xunit;

namespace DirectPmem.Garnet.Tests;

/// <summary>
/// The path beyond one machine: a Garnet primary and one replica on loopback, each with its log,
/// AOF and checkpoints on its own emulated DirectPmem device.
/// </summary>
[Collection("Garnet")]
public sealed class ReplicationTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static GarnetOnPmem StartNode(EmulatedVolume volume, int port = 0) => GarnetOnPmem.Start(volume, o =>
    {
        o.EnableCluster = true;
        o.EnableAOF = true;
        o.CommitFrequencyMs = 0;
        o.ClusterReplicaResumeWithData = true;
        o.ClusterReplicationReestablishmentTimeout = 1; // retry a faulted replication link every second
    }, port);

    [Fact]
    public void AReplicaOnItsOwnDeviceCatchesUpAndRestartsFromIt()
    {
        string primaryPath = _dir.File("primary.dax");
        string replicaPath = _dir.File("replica.dax");
        GarnetOnPmem? primary = StartNode(EmulatedVolume.Create(primaryPath, 96L << 20));
        GarnetOnPmem? replica = null;
        try
        {
            replica = StartNode(EmulatedVolume.Create(replicaPath, 96L << 20));
            int primaryPort = primary.Port, replicaPort = replica.Port;
            string primaryId;
            using (var p = new RespClient(primaryPort))
            {
                Assert.Equal("OK", p.CallString("CLUSTER", "ADDSLOTSRANGE", "0", "16383"));
                primaryId = p.CallString("CLUSTER", "MYID")!;
            }
            using (var r = new RespClient(replicaPort))
            {
                Assert.Equal("OK", r.CallString("CLUSTER", "MEET", "127.0.0.1", primaryPort.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                WaitFor(() => r.CallString("CLUSTER", "NODES")!.Contains(primaryId, StringComparison.Ordinal), "the replica to learn of the primary");
                Assert.Equal("OK", r.CallString("CLUSTER", "REPLICATE", primaryId));
            }

            SetKeys(primaryPort, 0, 1000);
            WaitForKeys(replicaPort, 0, 1000, "the replica to catch up");
            Assert.Contains(replica.Volume.Volume.GetDeviceNames(), n => n.Contains("aof.log", StringComparison.Ordinal));

            // Both go down. The replica comes back alone: what it serves comes from its own device.
            replica.Dispose();
            replica = null;
            primary.Dispose();
            primary = null;
            replica = StartNode(EmulatedVolume.Open(replicaPath), replicaPort);
            using (var r = new RespClient(replicaPort))
                Assert.Contains("role:slave", r.CallString("INFO", "replication"), StringComparison.Ordinal);
            WaitForKeys(replicaPort, 0, 1000, "the restarted replica to serve from its device with no primary up");

            // The primary comes back from its device on its port; the replica follows it again.
            primary = StartNode(EmulatedVolume.Open(primaryPath), primaryPort);
            SetKeys(primaryPort, 1000, 1500);
            WaitForKeys(primaryPort, 0, 1500, "the restarted primary to hold every key");
            WaitForKeys(replicaPort, 0, 1500, "the replica to catch up with the restarted primary");
        }
        finally
        {
            replica?.Dispose();
            primary?.Dispose();
        }
    }

    private static void SetKeys(int port, int from, int to)
    {
        using var p = new RespClient(port);
        for (int i = from; i < to; i++)
            Assert.Equal("OK", p.CallString("SET", $"key:{i}", $"value-{i}"));
    }

    private static void WaitForKeys(int port, int from, int to, string what)
    {
        using var r = new RespClient(port);
        Assert.Equal("OK", r.CallString("READONLY"));
        WaitFor(() =>
        {
            for (int i = from; i < to; i++)
            {
                if (r.Call("GET", $"key:{i}") is not string value || value != $"value-{i}")
                    return false;
            }
            return true;
        }, what);
    }

    private static void WaitFor(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > TestTime.Limit(TimeSpan.FromMinutes(3)))
                throw new TimeoutException($"{what} did not happen {TestTime.Describe(TestTime.Limit(TimeSpan.FromMinutes(3)))}");
            Thread.Sleep(200);
        }
    }
}
