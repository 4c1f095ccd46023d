using System.Globalization;
using DirectPmem.Garnet.Tests.Support;
using StackExchange.Redis;
using Xunit;

namespace DirectPmem.Garnet.Tests;

/// <summary>
/// Garnet's cluster mode on DirectPmem: 3 primaries with 1 replica each on loopback, every node a
/// child process of the sample server (so kill -9 is real) on its own emulated DirectPmem device,
/// the 16384 slots spread evenly over the primaries (<see cref="GarnetCluster"/>). Clients are
/// StackExchange.Redis in cluster mode. Garnet's replication is asynchronous (it has no WAIT): a
/// primary killed with SIGKILL can take acknowledged writes its replica had not received yet with
/// it. The tests measure that window and report it; everything else acknowledged must be readable.
/// Soak length: DIRECTPMEM_CLUSTER_SOAK_SECONDS (default 20), a failover every
/// DIRECTPMEM_CLUSTER_SOAK_FAILOVER_SECONDS (default 10; the long form is 600 and 60), on
/// DIRECTPMEM_CLUSTER_SOAK_DEVICE (pmem by default; file: Garnet's own file device, the baseline).
/// DIRECTPMEM_CLUSTER_SOAK_EVIDENCE=dir keeps every node's output and device below dir when the soak fails.
/// DIRECTPMEM_CLUSTER_SOAK_MEMORY sets every node's --memory (16m by default).
/// </summary>
[Collection("Garnet")]
public sealed class ClusterTests : IDisposable
{
    private const int Primaries = 3;
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static void Log(string line) => TestContext.Current.TestOutputHelper?.WriteLine(line);

    private static int Knob(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0 ? n : fallback;

    [Theory]
    [InlineData("--cluster --no-aof", "error: --cluster replicates by shipping the AOF, and --no-aof turns it off; drop one of them.")]
    [InlineData("--cluster-timeout 5", "error: --cluster-timeout only applies with --cluster.")]
    [InlineData("--cluster-reconnect-secs 2", "error: --cluster-reconnect-secs only applies with --cluster.")]
    [InlineData("--resume-with-data", "error: --resume-with-data only applies with --cluster.")]
    [InlineData("--cluster --cluster-timeout 0", "error: --cluster-timeout takes a whole number from 1 to 2147483647, not '0'.")]
    [InlineData("--cluster --cluster-reconnect-secs x", "error: --cluster-reconnect-secs takes a whole number from 0 to 2147483647, not 'x'.")]
    public void TheSampleRefusesClusterOptionsThatConflictOrDoNotApplyWithOneLine(string arguments, string expected)
    {
        string device = _dir.File("refused.dax");
        (int exitCode, string stdout, string stderr) = ServerProcess.Run([.. arguments.Split(' '), "--device", device]);
        Assert.Equal(2, exitCode);
        Assert.Equal(expected, stderr.TrimEnd('\n'));
        Assert.Equal("", stdout);
        Assert.False(File.Exists(device), "a refused start created the device");
    }

    [Fact]
    public async Task AWriteToEverySlotIsReadableFromItsPrimaryAndFromItsReplica()
    {
        using GarnetCluster cluster = GarnetCluster.Start(_dir, Primaries);
        using ConnectionMultiplexer redis = cluster.Connect();
        IDatabase db = redis.GetDatabase();

        // One key per slot, all 16384 of them.
        var keys = new string[16384];
        int found = 0;
        for (int i = 0; found < keys.Length; i++)
        {
            string key = string.Create(CultureInfo.InvariantCulture, $"slot-key:{i}");
            int slot = redis.HashSlot(key);
            if (keys[slot] is null)
            {
                keys[slot] = key;
                found++;
            }
        }
        bool[] written = await Task.WhenAll(keys.Select(k => db.StringSetAsync(k, "value of " + k)));
        Assert.All(written, Assert.True);

        for (int p = 0; p < Primaries; p++)
        {
            (int first, int last) = cluster.SlotRange(p);
            (GarnetClusterNode primary, GarnetClusterNode replica) = cluster.Shard(p);
            Assert.Same(cluster.Nodes[p], primary);
            // From the primary directly (no redirect followed): each of its slots' key.
            using (var client = new RespClient(primary.Port))
            {
                for (int slot = first; slot <= last; slot++)
                    Assert.Equal("value of " + keys[slot], client.Call("GET", keys[slot]));
            }
            // From its replica, once replication has caught up.
            using var reader = new RespClient(replica.Port);
            Assert.Equal("OK", reader.CallString("READONLY"));
            GarnetCluster.WaitFor(() =>
            {
                for (int slot = first; slot <= last; slot++)
                {
                    if (reader.Call("GET", keys[slot]) as string != "value of " + keys[slot])
                        return false;
                }
                return true;
            }, $"the replica {replica.Endpoint} to hold every key of slots {first}-{last}");
            // The replica does not serve a write: it redirects to its primary.
            Assert.StartsWith("MOVED", Assert.IsType<RespError>(reader.Call("SET", keys[first], "x")).Message, StringComparison.Ordinal);
        }
        Log($"16384 keys, one per slot, read back from {Primaries} primaries and their replicas");
        // Garnet 2.2.12 has no WAIT (docs/garnet-known-defects.md): a client cannot wait for its
        // write to reach a replica, so a failover after kill -9 can lose the replication window.
        // When this fails Garnet has gained WAIT: make the failover tests use it and expect no loss.
        Assert.StartsWith("ERR unknown command", Assert.IsType<RespError>(cluster.Nodes[0].Call("WAIT", "1", "1000")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void KillDashNineOfAPrimaryUnderLoadFailsOverToItsReplicaAndTheOldPrimaryRejoinsAsAReplica()
    {
        using GarnetCluster cluster = GarnetCluster.Start(_dir, Primaries);
        using ConnectionMultiplexer redis = cluster.Connect();
        using var load = new ClusterLoad(redis, 4, (w, i) => string.Create(CultureInfo.InvariantCulture, $"f{w}:{i}"));
        const int shard = 0;
        (int first, int last) = cluster.SlotRange(shard);
        bool InShard(int slot) => slot >= first && slot <= last;
        load.WaitForMoreAcknowledged(2000, _ => true, "before the kill");

        (GarnetClusterNode victim, GarnetClusterNode heir) = cluster.Shard(shard);
        long lag = ClusterLoad.ReplicationLag(victim, heir);
        victim.KillHard();
        Thread.Sleep(300); // replies the victim sent before it died reach the writers
        cluster.TakeOver(heir, shard);
        redis.Configure();
        int lost = load.TakeLost(heir, InShard);

        // The cluster keeps serving: new writes land in every shard, the failed-over one too.
        load.WaitForMoreAcknowledged(300, InShard, $"in shard {shard} on its new primary {heir.Endpoint}");
        load.WaitForMoreAcknowledged(300, s => !InShard(s), "in the other shards");

        // The old primary restarts from its own device and follows its former replica.
        cluster.Rejoin(victim, heir, shard);
        Assert.Equal("slave", victim.Role());
        load.WaitForMoreAcknowledged(300, InShard, "after the old primary rejoined");
        load.Stop();
        Assert.Empty(load.Corrupt);

        AssertEveryAcknowledgedWriteIsThere(cluster, load);
        // The rejoined node holds what its new primary holds.
        load.WaitUntilReplicaHolds(victim, heir, InShard, $"the rejoined replica of shard {shard}");
        (double perSecond, double p50, double p99) = load.SetStatistics();
        Log($"kill -9 of {victim.Endpoint}, CLUSTER FAILOVER FORCE on {heir.Endpoint}: {lost} acknowledged writes lost (the asynchronous replication window; the replica was {lag} AOF bytes behind just before the kill), " +
            $"{load.Acknowledged.Count} acknowledged writes checked, {load.Failed} failed writes never acknowledged; SET {perSecond:F0}/s p50 {p50:F2} ms p99 {p99:F2} ms");
    }

    [Fact]
    public void ALiveSlotMigratesBetweenPrimariesWhileClientsWriteAndNothingAcknowledgedIsLost()
    {
        using GarnetCluster cluster = GarnetCluster.Start(_dir, Primaries);
        using ConnectionMultiplexer redis = cluster.Connect();
        int slot = redis.HashSlot("{live}");
        int from = Enumerable.Range(0, Primaries).First(p => cluster.SlotRange(p).First <= slot && slot <= cluster.SlotRange(p).Last);
        GarnetClusterNode source = cluster.Nodes[from], target = cluster.Nodes[(from + 1) % Primaries];
        // Half the writers write into the migrating slot, half anywhere.
        using var load = new ClusterLoad(redis, 4, (w, i) => w % 2 == 0
            ? string.Create(CultureInfo.InvariantCulture, $"{{live}}:{w}:{i}")
            : string.Create(CultureInfo.InvariantCulture, $"m{w}:{i}"));
        load.WaitForMoreAcknowledged(1000, s => s == slot, $"in slot {slot} before the migration");

        Assert.Equal("OK", source.CallString("MIGRATE", "127.0.0.1", target.Port.ToString(CultureInfo.InvariantCulture), "", "0", "-1", "SLOTS", slot.ToString(CultureInfo.InvariantCulture)));
        GarnetCluster.WaitFor(() => cluster.Nodes.All(n => GarnetCluster.OwnerOf(n, slot) == target.Id), $"every node to see slot {slot} owned by {target.Endpoint}");
        load.WaitForMoreAcknowledged(500, s => s == slot, $"in slot {slot} on its new primary {target.Endpoint}");
        load.Stop();
        Assert.Empty(load.Corrupt);

        AssertEveryAcknowledgedWriteIsThere(cluster, load);
        using (var client = new RespClient(target.Port))
        {
            int inSlot = 0;
            foreach ((string key, (string value, int s)) in load.Acknowledged)
            {
                if (s != slot)
                    continue;
                Assert.Equal(value, client.Call("GET", key));
                inSlot++;
            }
            Log($"slot {slot} migrated from {source.Endpoint} to {target.Endpoint} under load: {inSlot} acknowledged keys in it, all on the target; " +
                $"{load.Acknowledged.Count} acknowledged in all, {load.Failed} writes refused or failed during the move");
        }
        Assert.StartsWith("MOVED", Assert.IsType<RespError>(source.Call("GET", "{live}:0:0")).Message, StringComparison.Ordinal);

        // The target's replica receives the migrated keys and those written after the move.
        GarnetClusterNode targetReplica = cluster.Nodes[Primaries + Array.IndexOf(cluster.Nodes, target)];
        using var reader = new RespClient(targetReplica.Port);
        Assert.Equal("OK", reader.CallString("READONLY"));
        GarnetCluster.WaitFor(() => load.Acknowledged.Where(a => a.Value.Slot == slot).All(a => reader.Call("GET", a.Key) as string == a.Value.Value),
            $"the target's replica {targetReplica.Endpoint} to hold every acknowledged key of slot {slot}");
    }

    [Fact]
    public void SoakOfMixedLoadWithARegularFailoverLosesOnlyEachFailoversReportedWindow()
    {
        int seconds = Knob("DIRECTPMEM_CLUSTER_SOAK_SECONDS", 20);
        int every = Knob("DIRECTPMEM_CLUSTER_SOAK_FAILOVER_SECONDS", 10);
        // DIRECTPMEM_CLUSTER_SOAK_DEVICE=file: the same soak on Garnet's own file device, to tell
        // Garnet's failover window from the device's.
        GarnetDevice storage = Environment.GetEnvironmentVariable("DIRECTPMEM_CLUSTER_SOAK_DEVICE") == "file" ? GarnetDevice.File : GarnetDevice.DirectPmem;
        // DIRECTPMEM_CLUSTER_SOAK_MEMORY: every node's log memory (16m by default). Garnet's
        // page-flush crash was met with 16m once the data far outgrew it (docs/garnet-known-defects.md).
        string memory = Environment.GetEnvironmentVariable("DIRECTPMEM_CLUSTER_SOAK_MEMORY") is { Length: > 0 } m ? m : "16m";
        Log($"soak on {storage}, --memory {memory}");
        using GarnetCluster cluster = GarnetCluster.Start(_dir, Primaries, storage, memory);
        try
        {
            Soak(cluster, seconds, every);
        }
        catch (Exception) when (KeepEvidence(cluster))
        {
            throw; // not reached: KeepEvidence only copies and returns false
        }
        catch (Exception e) when (cluster.Crashed() is { } crashed && IsKnownFlushCrash(crashed))
        {
            Assert.Skip($"node {crashed.Endpoint} ended itself with {GarnetFlushCrash.Description}, and the soak stopped with: {e.GetType().Name}: {e.Message.Split('\n')[0]}");
        }
    }

    /// <summary>
    /// When the soak fails and DIRECTPMEM_CLUSTER_SOAK_EVIDENCE names a directory: every node's
    /// output and a copy of its device (taken while the others still run) go into a fresh
    /// directory below it, so a crash seen once can be examined afterwards. Returns false, so the
    /// failure goes on as it was.
    /// </summary>
    private static bool KeepEvidence(GarnetCluster cluster)
    {
        if (cluster.Crashed() is { } crashed)
            Log($"node {crashed.Endpoint} ended by itself; its output:\n{crashed.Process!.Output}");
        string? parent = Environment.GetEnvironmentVariable("DIRECTPMEM_CLUSTER_SOAK_EVIDENCE");
        if (string.IsNullOrEmpty(parent))
            return false;
        string into = TempDirectory.CreateBelow(parent, "soak-");
        for (int i = 0; i < cluster.Nodes.Length; i++)
        {
            GarnetClusterNode node = cluster.Nodes[i];
            File.WriteAllText(Path.Combine(into, $"node{i}-{node.Port}.log"), node.Process?.Output ?? "(killed by the test, not running)");
            string copy = Path.Combine(into, Path.GetFileName(node.Device));
            if (File.Exists(node.Device))
                File.Copy(node.Device, copy);
            else if (Directory.Exists(node.Device))
                DirectoryCopy.Copy(node.Device, copy);
        }
        Log($"soak evidence kept in {into}");
        return false;
    }

    // A node that Garnet itself ended during a page flush (docs/garnet-known-defects.md).
    private static bool IsKnownFlushCrash(GarnetClusterNode node) => node.Process is { } process && GarnetFlushCrash.In(process.Output);

    private static void Soak(GarnetCluster cluster, int seconds, int every)
    {
        using ConnectionMultiplexer redis = cluster.Connect();
        using var load = new ClusterLoad(redis, 4, (w, i) => string.Create(CultureInfo.InvariantCulture, $"s{w}:{i}"), mixed: true);
        int round = 0;
        while (load.Clock.Elapsed < TimeSpan.FromSeconds(seconds))
        {
            TimeSpan next = TimeSpan.FromSeconds(every * (round + 1));
            if (next >= TimeSpan.FromSeconds(seconds))
            {
                TimeSpan rest = TimeSpan.FromSeconds(seconds) - load.Clock.Elapsed;
                if (rest > TimeSpan.Zero)
                    Thread.Sleep(rest);
                break;
            }
            if (next > load.Clock.Elapsed)
                Thread.Sleep(next - load.Clock.Elapsed);
            int shard = round % Primaries;
            (int first, int last) = cluster.SlotRange(shard);
            bool InShard(int slot) => slot >= first && slot <= last;
            (GarnetClusterNode victim, GarnetClusterNode heir) = cluster.Shard(shard);
            TimeSpan killedAt = load.Clock.Elapsed;
            long lag = ClusterLoad.ReplicationLag(victim, heir);
            var took = System.Diagnostics.Stopwatch.StartNew();
            victim.KillHard();
            Thread.Sleep(300);
            cluster.TakeOver(heir, shard);
            redis.Configure();
            TimeSpan unavailable = took.Elapsed;
            int lost = load.TakeLost(heir, InShard);
            cluster.Rejoin(victim, heir, shard);
            // Before the next failover: the rejoined node must hold everything acknowledged so far,
            // or the next failover of this shard would lose more than its window.
            load.WaitUntilReplicaHolds(victim, heir, InShard, $"failover {round + 1}");
            Log($"failover {round + 1} at {killedAt.TotalSeconds:F0} s: kill -9 {victim.Endpoint}, {heir.Endpoint} took shard {shard} in {unavailable.TotalSeconds:F1} s, {lost} acknowledged writes lost (the replica was {lag} AOF bytes behind just before the kill); old primary rejoined as replica after {took.Elapsed.TotalSeconds:F1} s");
            round++;
        }
        load.Stop();
        Assert.Empty(load.Corrupt);
        AssertEveryAcknowledgedWriteIsThere(cluster, load);
        (double perSecond, double p50, double p99) = load.SetStatistics();
        Log($"soak {seconds} s, {round} failovers: {load.Acknowledged.Count} keys and {load.AcknowledgedFields.Count} hash fields acknowledged and read back, {load.Reads} reads, " +
            $"{load.Failed} failed operations never acknowledged; SET {perSecond:F0}/s p50 {p50:F2} ms p99 {p99:F2} ms (under load: {File.ReadAllText("/proc/loadavg").Trim()})");
        Assert.True(seconds < every || round > 0, "no failover happened");
    }

    // Pipelined reads, 2000 in flight at a time: a long soak's hundreds of thousands sent at once
    // would wait longer than the client's timeout on a loaded machine.
    private static RedisValue[] AwaitAll<T>(T[] items, Func<T, Task<RedisValue>> read)
    {
        var values = new RedisValue[items.Length];
        for (int start = 0; start < items.Length; start += 2000)
        {
            RedisValue[] batch = Task.WhenAll(items.Skip(start).Take(2000).Select(read)).GetAwaiter().GetResult();
            batch.CopyTo(values, start);
        }
        return values;
    }

    /// <summary>Every key and hash field still counted as acknowledged reads back with its value through the cluster.</summary>
    private static void AssertEveryAcknowledgedWriteIsThere(GarnetCluster cluster, ClusterLoad load)
    {
        using ConnectionMultiplexer redis = cluster.Connect();
        IDatabase db = redis.GetDatabase();
        KeyValuePair<string, (string Value, int Slot)>[] keys = [.. load.Acknowledged];
        RedisValue[] reads = AwaitAll(keys, k => db.StringGetAsync(k.Key));
        string[] missing = [.. keys.Where((k, i) => reads[i] != k.Value.Value).Select(k => $"{k.Key} (slot {k.Value.Slot})")];
        Assert.True(missing.Length == 0, $"{missing.Length} of {keys.Length} acknowledged keys do not read back, e.g. {string.Join(", ", missing.Take(5))}");
        KeyValuePair<(string Key, string Field), (string Value, int Slot)>[] fields = [.. load.AcknowledgedFields];
        RedisValue[] fieldReads = AwaitAll(fields, f => db.HashGetAsync(f.Key.Key, f.Key.Field));
        int missingFields = fields.Where((f, i) => fieldReads[i] != f.Value.Value).Count();
        Assert.True(missingFields == 0, $"{missingFields} of {fields.Length} acknowledged hash fields do not read back");
    }
}
