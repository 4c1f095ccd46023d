using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using StackExchange.Redis;

namespace DirectPmem.Garnet.Tests.Support;

/// <summary>
/// Writer threads on a cluster-mode StackExchange.Redis connection. Every key is written once, so
/// a key is either acknowledged with its one value or was never acknowledged. A write that fails
/// (a killed node, a redirect during a migration, a timeout) is counted and the writer moves on
/// to a new key: it was never acknowledged, whether or not it landed. With <c>mixed</c> on, a
/// writer also reads back keys it wrote (a present value must be the acknowledged one) and adds
/// hash fields.
/// </summary>
public sealed class ClusterLoad : IDisposable
{
    private readonly IConnectionMultiplexer _redis;
    private readonly Func<int, long, string> _keyFor;
    private readonly bool _mixed;
    private readonly Thread[] _threads;
    private readonly List<long>[] _latencies;
    private readonly ConcurrentQueue<string> _corrupt = new();
    private volatile bool _stop;
    private long _failed;
    private long _reads;

    public ClusterLoad(IConnectionMultiplexer redis, int writers, Func<int, long, string> keyFor, bool mixed = false)
    {
        _redis = redis;
        _keyFor = keyFor;
        _mixed = mixed;
        _latencies = [.. Enumerable.Range(0, writers).Select(_ => new List<long>())];
        _threads = [.. Enumerable.Range(0, writers).Select(w => new Thread(() => Run(w)) { IsBackground = true, Name = $"cluster-writer-{w}" })];
        Clock = Stopwatch.StartNew();
        foreach (Thread t in _threads)
            t.Start();
    }

    /// <summary>Keys acknowledged with OK, each with its value and hash slot.</summary>
    public ConcurrentDictionary<string, (string Value, int Slot)> Acknowledged { get; } = new(StringComparer.Ordinal);

    /// <summary>Hash fields acknowledged by HSET: the hash key and field, and its value.</summary>
    public ConcurrentDictionary<(string Key, string Field), (string Value, int Slot)> AcknowledgedFields { get; } = new();

    public long Failed => Interlocked.Read(ref _failed);

    public long Reads => Interlocked.Read(ref _reads);

    public Stopwatch Clock { get; }

    /// <summary>Keys whose read-back value was not the acknowledged one (must stay empty).</summary>
    public IReadOnlyCollection<string> Corrupt => _corrupt;

    private void Run(int writer)
    {
        IDatabase db = _redis.GetDatabase();
        var random = new Random(writer);
        var mine = new List<string>();
        for (long i = 0; !_stop; i++)
        {
            string key = _keyFor(writer, i);
            try
            {
                int dice = _mixed ? random.Next(10) : 0;
                if (dice < 6)
                {
                    string value = string.Create(CultureInfo.InvariantCulture, $"{writer}.{i}.") + new string('v', random.Next(0, 100));
                    long start = Stopwatch.GetTimestamp();
                    if (db.StringSet(key, value))
                    {
                        _latencies[writer].Add(Stopwatch.GetTimestamp() - start);
                        Acknowledged[key] = (value, _redis.HashSlot(key));
                        mine.Add(key);
                    }
                }
                else if (dice < 9 && mine.Count > 0)
                {
                    string old = mine[random.Next(mine.Count)];
                    RedisValue got = db.StringGet(old);
                    Interlocked.Increment(ref _reads);
                    // Absent may be a failover's lost window (judged later); different is corruption.
                    if (!got.IsNull && Acknowledged.TryGetValue(old, out var expected) && got != expected.Value)
                        _corrupt.Enqueue($"{old}: read '{got}', acknowledged '{expected.Value}'");
                }
                else
                {
                    string hash = _keyFor(writer, i / 64) + ":h";
                    string field = string.Create(CultureInfo.InvariantCulture, $"f{i}");
                    db.HashSet(hash, field, key);
                    AcknowledgedFields[(hash, field)] = (key, _redis.HashSlot(hash));
                }
            }
            catch (Exception e) when (e is RedisException or TimeoutException or ObjectDisposedException)
            {
                // Never acknowledged: a killed node, a moved slot, a timeout. Back off a little.
                Interlocked.Increment(ref _failed);
                Thread.Sleep(20);
            }
        }
    }

    /// <summary>Stops the writers and waits for them.</summary>
    public void Stop()
    {
        _stop = true;
        foreach (Thread t in _threads)
            t.Join();
        Clock.Stop();
    }

    /// <summary>Waits until <paramref name="count"/> more writes whose slot passes <paramref name="slots"/> are acknowledged.</summary>
    public void WaitForMoreAcknowledged(int count, Func<int, bool> slots, string what)
    {
        int before = Acknowledged.Values.Count(v => slots(v.Slot));
        GarnetCluster.WaitFor(() => Acknowledged.Values.Count(v => slots(v.Slot)) >= before + count, $"{count} more acknowledged writes {what}");
    }

    /// <summary>
    /// Reads every acknowledged key and field whose slot passes <paramref name="slots"/> on
    /// <paramref name="node"/> (no redirects followed); those absent are removed from the
    /// acknowledged sets and counted: the window a failover lost. A value that differs is
    /// corruption and throws.
    /// </summary>
    public int TakeLost(GarnetClusterNode node, Func<int, bool> slots)
    {
        int lost = 0;
        using var client = new RespClient(node.Port);
        foreach ((string key, (string value, int slot)) in Acknowledged.ToArray())
        {
            if (!slots(slot))
                continue;
            object? got = client.Call("GET", key);
            if (got is null)
            {
                Acknowledged.TryRemove(key, out _);
                lost++;
            }
            else if (got as string != value)
            {
                throw new InvalidOperationException($"node {node.Endpoint}: acknowledged {key} = '{value}' reads as '{got}'");
            }
        }
        foreach (((string key, string field), (string value, int slot)) in AcknowledgedFields.ToArray())
        {
            if (!slots(slot))
                continue;
            object? got = client.Call("HGET", key, field);
            if (got is null)
            {
                AcknowledgedFields.TryRemove((key, field), out _);
                lost++;
            }
            else if (got as string != value)
            {
                throw new InvalidOperationException($"node {node.Endpoint}: acknowledged field {key} {field} = '{value}' reads as '{got}'");
            }
        }
        return lost;
    }

    /// <summary>
    /// Waits until replica <paramref name="node"/> has read its primary's replication stream up to
    /// where <paramref name="primary"/> stands now (INFO replication: the replica's
    /// slave_read_repl_offset reaching the primary's master_repl_offset), then until it holds every
    /// key acknowledged so far whose slot passes <paramref name="slots"/> (read with READONLY, no
    /// redirects); on timeout throws with how many it still lacks.
    /// </summary>
    public void WaitUntilReplicaHolds(GarnetClusterNode node, GarnetClusterNode primary, Func<int, bool> slots, string what)
    {
        KeyValuePair<string, (string Value, int Slot)>[] expected = [.. Acknowledged.Where(a => slots(a.Value.Slot))];
        long target = ReplicationField(primary, "master_repl_offset");
        GarnetCluster.WaitFor(() => ReplicationField(node, "slave_read_repl_offset") >= target,
            $"{what}: {node.Endpoint} to read {primary.Endpoint}'s replication stream up to offset {target}");
        int missing = -1;
        try
        {
            GarnetCluster.WaitFor(() =>
            {
                using var reader = new RespClient(node.Port);
                if (reader.CallString("READONLY") != "OK")
                    return false;
                missing = expected.Count(a => reader.Call("GET", a.Key) as string != a.Value.Value);
                return missing == 0;
            }, $"{what}: {node.Endpoint} to hold all {expected.Length} acknowledged keys");
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}; it lacks {missing}", e);
        }
    }

    /// <summary>How far (in AOF bytes) <paramref name="replica"/> has yet to read of <paramref name="primary"/>'s replication stream; -1 when either cannot say.</summary>
    public static long ReplicationLag(GarnetClusterNode primary, GarnetClusterNode replica)
    {
        long ahead = ReplicationField(primary, "master_repl_offset"), read = ReplicationField(replica, "slave_read_repl_offset");
        return ahead < 0 || read < 0 ? -1 : Math.Max(0, ahead - read);
    }

    /// <summary>A number field of a node's INFO replication, or -1 when it has none.</summary>
    public static long ReplicationField(GarnetClusterNode node, string name)
    {
        string? line = node.CallString("INFO", "replication").Split('\n').Select(l => l.Trim())
            .FirstOrDefault(l => l.StartsWith(name + ":", StringComparison.Ordinal));
        return line is null ? -1 : long.Parse(line.AsSpan(name.Length + 1), CultureInfo.InvariantCulture);
    }

    /// <summary>Acknowledged SETs per second and their p50/p99 latency in milliseconds.</summary>
    public (double PerSecond, double P50Ms, double P99Ms) SetStatistics()
    {
        long[] all = [.. _latencies.SelectMany(l => l).Order()];
        if (all.Length == 0)
            return (0, 0, 0);
        double Ms(double q) => all[Math.Min(all.Length - 1, (int)(q * all.Length))] * 1000.0 / Stopwatch.Frequency;
        return (all.Length / Clock.Elapsed.TotalSeconds, Ms(0.50), Ms(0.99));
    }

    public void Dispose()
    {
        if (!_stop)
            Stop();
    }
}
