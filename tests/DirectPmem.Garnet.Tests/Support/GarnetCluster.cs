using System.Diagnostics;
using System.Globalization;
using StackExchange.Redis;

namespace DirectPmem.Garnet.Tests.Support;

/// <summary>
/// One node of a <see cref="GarnetCluster"/>: the sample server (samples/DirectPmem.GarnetServer)
/// in cluster mode as a child process, on its own emulated DirectPmem device, on a fixed port so
/// that a restart is the same node to the others.
/// </summary>
public sealed class GarnetClusterNode : IDisposable
{
    private readonly string[] _args;

    internal GarnetClusterNode(string device, ServerProcess process, string[] args)
    {
        Device = device;
        Process = process;
        Port = process.Port;
        _args = args;
    }

    /// <summary>The node's emulated device file (or its directory on Garnet's file device).</summary>
    public string Device { get; }

    /// <summary>The loopback port (RESP and Garnet's cluster bus).</summary>
    public int Port { get; }

    /// <summary>The running process, or null after <see cref="KillHard"/>.</summary>
    public ServerProcess? Process { get; private set; }

    /// <summary>The node id, read once the node is up (it is kept on the device across restarts).</summary>
    public string Id { get; internal set; } = "";

    public string Endpoint => string.Create(CultureInfo.InvariantCulture, $"127.0.0.1:{Port}");

    /// <summary>SIGKILL: no shutdown code runs, the device keeps what the process had flushed.</summary>
    public void KillHard()
    {
        Process?.Dispose();
        Process = null;
    }

    /// <summary>Starts the node again on its device and port.</summary>
    public void Restart()
    {
        if (Process is not null)
            throw new InvalidOperationException($"node {Endpoint} is still running");
        string[] args = [.. _args.Where(a => a != "--size" && a != GarnetCluster.DeviceSize), "--port", Port.ToString(CultureInfo.InvariantCulture)];
        // The killed process's port can stay bound for a moment; try again for a few seconds.
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                Process = ServerProcess.Start(args);
                return;
            }
            catch (InvalidOperationException e) when (e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase) && clock.Elapsed < TimeSpan.FromSeconds(20))
            {
                Thread.Sleep(500);
            }
        }
    }

    /// <summary>One command on a fresh connection to this node (no redirects followed); a failed connection throws naming the node.</summary>
    public object? Call(params string[] args)
    {
        try
        {
            using var client = new RespClient(Port);
            return client.Call(args);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
        {
            throw new IOException($"node {Endpoint}: {string.Join(' ', args)}: {e.Message}", e);
        }
    }

    /// <summary>Like <see cref="Call"/>, a string reply; an error reply throws naming the command and the node.</summary>
    public string CallString(params string[] args) => Call(args) switch
    {
        RespError e => throw new InvalidOperationException($"node {Endpoint}: {string.Join(' ', args)}: {e.Message}"),
        null => "",
        object o => Convert.ToString(o, CultureInfo.InvariantCulture) ?? "",
    };

    /// <summary>"master" or "slave", from INFO replication.</summary>
    public string Role()
    {
        string info = CallString("INFO", "replication");
        string? line = info.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("role:", StringComparison.Ordinal));
        return line?[5..] ?? throw new InvalidOperationException($"node {Endpoint}: INFO replication has no role line:\n{info}");
    }

    public void Dispose() => KillHard();
}

/// <summary>
/// A Garnet cluster on loopback, formed the way Garnet's own cluster tests form one
/// (test/Garnet.test.cluster, ClusterTestUtils.SimpleSetupCluster): slots spread over the
/// primaries with CLUSTER ADDSLOTSRANGE, a distinct config epoch per node, CLUSTER MEET from the
/// first node to every other until each knows each, then CLUSTER REPLICATE on the replicas.
/// Every node is a child process (so kill -9 is real) on its own emulated DirectPmem device.
/// Nodes 0..P-1 start as primaries; node P+i starts as the replica of node i.
/// </summary>
public sealed class GarnetCluster : IDisposable
{
    internal const string DeviceSize = "128m";

    private GarnetCluster(GarnetClusterNode[] nodes, int primaries)
    {
        Nodes = nodes;
        PrimaryCount = primaries;
    }

    public GarnetClusterNode[] Nodes { get; }

    public int PrimaryCount { get; }

    /// <summary>The longest any one step of forming, failing over or catching up may take.</summary>
    public static TimeSpan StepLimit => TestTime.Limit(TimeSpan.FromMinutes(2));

    /// <summary>
    /// Starts <paramref name="primaries"/> primaries with one replica each, every one on its own
    /// device under <paramref name="dir"/>, and forms the cluster. The nodes start in parallel.
    /// </summary>
    /// <remarks>
    /// <paramref name="storage"/> <see cref="GarnetDevice.File"/> puts every node on Garnet's own
    /// local-file device instead (the sample's <c>--local-dir</c>): the baseline that tells
    /// Garnet's behaviour from the device's. <paramref name="memory"/> is every node's <c>--memory</c>.
    /// </remarks>
    public static GarnetCluster Start(TempDirectory dir, int primaries, GarnetDevice storage = GarnetDevice.DirectPmem, string memory = "16m")
    {
        int count = primaries * 2;
        var nodes = new GarnetClusterNode?[count];
        try
        {
            Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = 3 }, i =>
            {
                string device = dir.File(storage == GarnetDevice.DirectPmem ? $"node{i}.dax" : $"node{i}");
                string[] where = storage == GarnetDevice.DirectPmem ? ["--device", device, "--size", DeviceSize] : ["--local-dir", device];
                // --commit-per-op: a write is acknowledged after its AOF commit on the primary's
                // device. 16m of log memory (the default here) is the sample's floor without a warning.
                string[] args = ["--cluster", .. where, "--commit-per-op", "--memory", memory, "--page", "256k", "--segment", "8m", "--index", "1m"];
                ServerProcess process = ServerProcess.Start([.. args, "--port", "0"]);
                nodes[i] = new GarnetClusterNode(device, process, args);
            });
            var cluster = new GarnetCluster([.. nodes.Select(n => n!)], primaries);
            cluster.Form();
            return cluster;
        }
        catch
        {
            foreach (GarnetClusterNode? node in nodes)
                node?.Dispose();
            throw;
        }
    }

    private void Form()
    {
        foreach (GarnetClusterNode node in Nodes)
            node.Id = node.CallString("CLUSTER", "MYID");
        for (int p = 0; p < PrimaryCount; p++)
        {
            (int first, int last) = SlotRange(p);
            Check("OK", Nodes[p].CallString("CLUSTER", "ADDSLOTSRANGE", Str(first), Str(last)), Nodes[p], "ADDSLOTSRANGE");
        }
        for (int i = 0; i < Nodes.Length; i++)
            Check("OK", Nodes[i].CallString("CLUSTER", "SET-CONFIG-EPOCH", Str(i + 1)), Nodes[i], "SET-CONFIG-EPOCH");
        for (int i = 1; i < Nodes.Length; i++)
            Check("OK", Nodes[0].CallString("CLUSTER", "MEET", "127.0.0.1", Str(Nodes[i].Port)), Nodes[0], "MEET");
        WaitFor(() => Nodes.All(n => Nodes.All(o => Knows(n, o))), "every node to know every other through gossip");
        for (int p = 0; p < PrimaryCount; p++)
            Replicate(Nodes[PrimaryCount + p], Nodes[p]);
    }

    /// <summary>The slots primary <paramref name="p"/> is given at formation: an even share.</summary>
    public (int First, int Last) SlotRange(int p) => (16384 * p / PrimaryCount, (16384 * (p + 1) / PrimaryCount) - 1);

    /// <summary>Shard <paramref name="shard"/>'s two nodes: the one serving as its primary now, and the other.</summary>
    public (GarnetClusterNode Primary, GarnetClusterNode Replica) Shard(int shard)
    {
        GarnetClusterNode a = Nodes[shard], b = Nodes[PrimaryCount + shard];
        return a.Process is not null && a.Role() == "master" ? (a, b) : (b, a);
    }

    /// <summary>
    /// Promotes <paramref name="heir"/>, the replica of shard <paramref name="shard"/> whose primary
    /// is down, with CLUSTER FAILOVER FORCE (Garnet's documented way when the primary is
    /// unreachable), and waits until it and every other running node say it owns the shard's slots.
    /// </summary>
    public void TakeOver(GarnetClusterNode heir, int shard)
    {
        Check("OK", heir.CallString("CLUSTER", "FAILOVER", "FORCE"), heir, "CLUSTER FAILOVER FORCE");
        int slot = SlotRange(shard).First;
        WaitWithOutputs(() => heir.Role() == "master" && Nodes.Where(n => n.Process is not null).All(n => OwnerOf(n, slot) == heir.Id),
            $"{heir.Endpoint} to take over shard {shard} (slot {slot}) in every running node's view");
    }

    /// <summary>
    /// Restarts <paramref name="old"/> (a killed primary of shard <paramref name="shard"/>) from its
    /// own device on its port, waits until it has learnt that <paramref name="primary"/> owns the
    /// shard now, and attaches it as <paramref name="primary"/>'s replica.
    /// </summary>
    public void Rejoin(GarnetClusterNode old, GarnetClusterNode primary, int shard)
    {
        old.Restart();
        int slot = SlotRange(shard).First;
        WaitWithOutputs(() => OwnerOf(old, slot) == primary.Id, $"the restarted {old.Endpoint} to learn that {primary.Endpoint} owns slot {slot}");
        try
        {
            Replicate(old, primary);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}\n{Outputs()}", e);
        }
    }

    /// <summary>CLUSTER REPLICATE on <paramref name="replica"/>, then waits until it reports its primary's link up.</summary>
    public static void Replicate(GarnetClusterNode replica, GarnetClusterNode primary)
    {
        WaitFor(() => Knows(replica, primary), $"{replica.Endpoint} to know {primary.Endpoint}");
        Check("OK", replica.CallString("CLUSTER", "REPLICATE", primary.Id), replica, $"REPLICATE {primary.Endpoint}");
        WaitFor(() =>
        {
            string info = replica.CallString("INFO", "replication");
            return info.Contains("role:slave", StringComparison.Ordinal) && info.Contains("master_link_status:up", StringComparison.Ordinal)
                && info.Contains(string.Create(CultureInfo.InvariantCulture, $"master_port:{primary.Port}"), StringComparison.Ordinal);
        }, $"{replica.Endpoint} to attach as the replica of {primary.Endpoint}");
    }

    /// <summary>Whether <paramref name="node"/>'s CLUSTER NODES lists <paramref name="other"/> by id at its address.</summary>
    public static bool Knows(GarnetClusterNode node, GarnetClusterNode other) =>
        node.CallString("CLUSTER", "NODES").Split('\n').Any(l => l.StartsWith(other.Id, StringComparison.Ordinal)
            && l.Contains($" {other.Endpoint}@", StringComparison.Ordinal));

    /// <summary>The node id <paramref name="asker"/> believes owns <paramref name="slot"/>, from its CLUSTER NODES.</summary>
    public static string? OwnerOf(GarnetClusterNode asker, int slot)
    {
        foreach (string line in asker.CallString("CLUSTER", "NODES").Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] fields = line.Trim().Split(' ');
            foreach (string range in fields.Skip(8))
            {
                if (range.StartsWith('['))
                    continue; // a migrating/importing marker
                string[] ends = range.Split('-');
                int first = int.Parse(ends[0], CultureInfo.InvariantCulture);
                int last = ends.Length > 1 ? int.Parse(ends[1], CultureInfo.InvariantCulture) : first;
                if (slot >= first && slot <= last)
                    return fields[0];
            }
        }
        return null;
    }

    /// <summary>A cluster-mode StackExchange.Redis connection that knows every node's endpoint.</summary>
    public ConnectionMultiplexer Connect()
    {
        var config = new ConfigurationOptions
        {
            AbortOnConnectFail = false,
            ConnectTimeout = (int)TestTime.Limit(TimeSpan.FromSeconds(10)).TotalMilliseconds,
            // A write stuck on a killed node fails within this and the writer moves on.
            SyncTimeout = (int)TestTime.Limit(TimeSpan.FromSeconds(10)).TotalMilliseconds,
            AsyncTimeout = (int)TestTime.Limit(TimeSpan.FromSeconds(10)).TotalMilliseconds,
            ConnectRetry = 1,
            ConfigCheckSeconds = 1,
            AllowAdmin = true,
        };
        foreach (GarnetClusterNode node in Nodes)
            config.EndPoints.Add("127.0.0.1", node.Port);
        return ConnectionMultiplexer.Connect(config);
    }

    /// <summary>Polls <paramref name="condition"/> every 100 ms until it holds, or throws naming <paramref name="what"/>.</summary>
    public static void WaitFor(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        Exception? last = null;
        while (true)
        {
            try
            {
                if (condition())
                    return;
                last = null;
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or InvalidOperationException)
            {
                last = e; // a node still starting, or one just killed: ask again
            }
            if (clock.Elapsed > StepLimit)
                throw new TimeoutException($"{what} did not happen {TestTime.Describe(StepLimit)}{(last is null ? "" : $" (last error: {last.Message})")}");
            Thread.Sleep(100);
        }
    }

    /// <summary><see cref="WaitFor"/>, with every node's output in the exception.</summary>
    private void WaitWithOutputs(Func<bool> condition, string what)
    {
        try
        {
            WaitFor(condition, what);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}\n{Outputs()}", e);
        }
    }

    private static void Check(string expected, string actual, GarnetClusterNode node, string what)
    {
        if (actual != expected)
            throw new InvalidOperationException($"node {node.Endpoint}: {what} replied '{actual}', not '{expected}'");
    }

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// A node this cluster did not kill that ended by itself: .NET's FailFast ("Process
    /// terminated.") in its output. Null when every node we did not kill is up.
    /// </summary>
    public GarnetClusterNode? Crashed() =>
        Nodes.FirstOrDefault(n => n.Process is not null && n.Process.Output.Contains("Process terminated.", StringComparison.Ordinal));

    /// <summary>Every node's output, for a failure message.</summary>
    public string Outputs() => string.Join("\n", Nodes.Select(n => $"--- node {n.Endpoint} ({n.Id}):\n{n.Process?.Output ?? "(not running)"}"));

    public void Dispose()
    {
        foreach (GarnetClusterNode node in Nodes)
            node.Dispose();
    }
}
