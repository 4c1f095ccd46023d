using System.Runtime.InteropServices;
using DirectPmem.Garnet.Tests.Support;
using StackExchange.Redis;
using Xunit;

namespace DirectPmem.Garnet.Tests;

/// <summary>
/// The Garnet defects reported in issue 22, reproduced on both devices side by side (DirectPmem's
/// volume and Garnet's own RandomAccess file device) with Microsoft.Garnet 2.2.12. A defect still
/// present asserts today's behaviour (docs/garnet-known-defects.md says what a user does about it);
/// one that does not reproduce is a regression test of the correct behaviour.
/// </summary>
[Collection("Garnet")]
public sealed class GarnetDefectTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private string Where(GarnetDevice device) => device == GarnetDevice.DirectPmem ? _dir.File("garnet.dax") : Path.Combine(_dir.Path, "local");

    private static void Log(string line) => TestContext.Current.TestOutputHelper?.WriteLine(line);

    [Theory]
    [InlineData(GarnetDevice.DirectPmem)]
    [InlineData(GarnetDevice.File)]
    public async Task DelOfAnExistingKeyWhileASaveRunsReplies0ButTheKeyIsDeleted_AGarnetDefect(GarnetDevice device)
    {
        // Garnet 2.2.8 and 2.2.12, on both devices: every DEL that runs while a SAVE is in progress
        // replies 0 ("no key deleted") although the key existed and is gone afterwards. When Garnet
        // fixes it, the first assertion fails: make this the regression test and update the page.
        using GarnetNode node = GarnetNode.Start(device, Where(device), o => o.EnableAOF = false);
        using ConnectionMultiplexer redis = node.Connect();
        using ConnectionMultiplexer other = node.Connect();
        IDatabase db = redis.GetDatabase();
        GarnetServerTests.WriteKeys(db, 0, 50_000);
        int repliedZero = 0, repliedOne = 0;
        for (int round = 0; round < 5; round++)
        {
            Task<RedisResult> save = other.GetServer(other.GetEndPoints()[0]).ExecuteAsync("SAVE");
            for (int i = round * 1000; !save.IsCompleted && i < (round + 1) * 1000; i++)
            {
                if (db.KeyDelete($"key:{i}"))
                    repliedOne++;
                else
                    repliedZero++;
                Assert.False(db.KeyExists($"key:{i}"), $"key:{i} survived its DEL");
            }
            Assert.Equal("OK", (await save).ToString());
        }
        Log($"{device}: DEL of an existing key during SAVE replied 0 {repliedZero} times and 1 {repliedOne} times");
        Assert.True(repliedZero > 0, $"no DEL during SAVE replied 0 ({repliedOne} replied 1): Garnet may have fixed the defect, or the SAVEs were too short to overlap");
        // Outside a SAVE the reply is right.
        Assert.True(db.KeyDelete("key:49999"));
    }

    [Theory]
    [InlineData(GarnetDevice.DirectPmem)]
    [InlineData(GarnetDevice.File)]
    public void KeysListsEveryKeyOnceAfterCheckpointAndAofRecovery(GarnetDevice device)
    {
        const int Keys = 20_000;
        for (int boot = 0; boot < 3; boot++)
        {
            using GarnetNode node = GarnetNode.Start(device, Where(device), o => { o.EnableAOF = true; o.CommitFrequencyMs = 0; o.WaitForCommit = true; });
            using ConnectionMultiplexer redis = node.Connect();
            IServer admin = redis.GetServer(redis.GetEndPoints()[0]);
            if (boot > 0)
            {
                // Reported on 2.2.8: a dropped connection (NullReferenceException in Tsavorite's
                // scan) or keys listed twice. Not reproduced here on 2.2.8 or 2.2.12.
                string[] names = (string[])admin.Execute("KEYS", "*")!;
                Log($"{device}: boot {boot}: KEYS * listed {names.Length}, {names.Distinct().Count()} distinct, of {Keys}");
                Assert.Equal(Keys, names.Length);
                Assert.Equal(Keys, names.Distinct().Count());
            }
            IDatabase db = redis.GetDatabase();
            GarnetServerTests.WriteKeys(db, 0, Keys);
            Assert.Equal("OK", admin.Execute("SAVE").ToString());
            GarnetServerTests.WriteKeys(db, 0, Keys / 4); // updates after the checkpoint: only the AOF has them
        }
    }

    [Theory]
    [InlineData(GarnetDevice.DirectPmem)]
    [InlineData(GarnetDevice.File)]
    public async Task AcknowledgedWritesWithATinyLogMemoryAcrossSaveKillAndAofRecoveryComeBackOrTheKnownLossIsReported(GarnetDevice device)
    {
        // Per key: the last acknowledged value, and every value sent after it (a write the kill
        // cut off before its reply may or may not have landed; either is correct).
        var acked = new Dictionary<string, string>();
        var pending = new Dictionary<string, List<string>>();
        var random = new Random(1234);
        string[] where = device == GarnetDevice.DirectPmem ? ["--device", _dir.File("garnet.dax")] : ["--local-dir", Path.Combine(_dir.Path, "local")];
        string[] size = device == GarnetDevice.DirectPmem ? ["--size", "256m"] : [];
        int totalLost = 0;
        for (int boot = 0; boot < 5; boot++)
        {
            using ServerProcess server = ServerProcess.Start([.. where, .. (boot == 0 ? size : []), "--port", "0", "--commit-per-op", "--memory", "2m", "--page", "64k", "--segment", "8m", "--index", "1m", "--checkpoint-secs", "0"]);
            using ConnectionMultiplexer redis = GarnetOnPmem.Connect(server.Port);
            IDatabase db = redis.GetDatabase();
            int lost = 0;
            foreach ((string key, string value) in acked)
            {
                string? found;
                try
                {
                    found = db.StringGet(key);
                }
                catch (RedisTimeoutException hung) when (device == GarnetDevice.File)
                {
                    // Seen in CI: Garnet's own file device can leave a read after recovery unanswered (its
                    // RandomAccess device drops an exception thrown inside a read callback, and the waiter
                    // hangs). Garnet's defect, not DirectPmem's: on the DirectPmem device the same timeout fails.
                    Assert.Skip($"{device}: boot {boot}: a GET after kill -9 and recovery was never answered ({hung.Message.Split(',')[0]}). " +
                        "A known defect of Garnet's file device with a tiny log memory (docs/garnet-known-defects.md); DirectPmem's device is held to answering.");
                    return;
                }
                if (found == value || (found is not null && pending.TryGetValue(key, out List<string>? later) && later.Contains(found)))
                    continue;
                // Missing or an older value: lost. Anything this test never wrote for the key is damage.
                Assert.True(found is null || WasWritten(key, found), $"{device}: boot {boot}: {key} holds '{found}', which was never written to it");
                lost++;
            }
            pending.Clear();
            totalLost += lost;
            Log($"{device}: boot {boot}: {lost} of {acked.Count} acknowledged writes lost");
            IServer admin = redis.GetServer(redis.GetEndPoints()[0]);
            using var killer = new Timer(_ => server.KillHard(), null, random.Next(300, 1500), Timeout.Infinite);
            var tasks = new List<Task>();
            for (int c = 0; c < 6; c++)
            {
                int client = c;
                tasks.Add(Task.Run(async () =>
                {
                    using ConnectionMultiplexer mine = GarnetOnPmem.Connect(server.Port);
                    IDatabase d = mine.GetDatabase();
                    try
                    {
                        for (int i = 0; ; i += 16)
                        {
                            var batch = new List<(string, string, Task<bool>)>();
                            for (int j = i; j < i + 16; j++)
                            {
                                string key = $"c{client}:k{j % 3000}";
                                string value = Value(boot, j);
                                lock (acked)
                                    CollectionsMarshal.GetValueRefOrAddDefault(pending, key, out _) ??= [];
                                lock (acked)
                                    pending[key].Add(value);
                                batch.Add((key, value, d.StringSetAsync(key, value)));
                            }
                            foreach ((string key, string value, Task<bool> set) in batch)
                            {
                                if (await set)
                                {
                                    lock (acked)
                                    {
                                        acked[key] = value;
                                        List<string> later = pending[key];
                                        later.RemoveRange(0, later.IndexOf(value) + 1);
                                    }
                                }
                            }
                            if (client == 0 && i % 2048 == 1024)
                                await mine.GetServer(mine.GetEndPoints()[0]).ExecuteAsync("SAVE");
                        }
                    }
                    catch (Exception e) when (e is RedisException or ObjectDisposedException)
                    {
                        // The kill ended the connection; writes not acknowledged are not counted.
                    }
                }, TestContext.Current.CancellationToken));
            }
            await Task.WhenAll(tasks);
        }
        Log($"{device}: {totalLost} acknowledged writes lost in all");
        if (totalLost > 0)
        {
            Assert.Skip($"{device}: {totalLost} acknowledged writes came back missing or older after kill -9 and recovery. A known Garnet defect " +
                "with a tiny log memory, seen on both devices and intermittent (docs/garnet-known-defects.md); nothing came back damaged.");
        }
    }

    private static string Value(int boot, int j) => $"b{boot}.{j}." + new string('x', 100 + (j % 300));

    // Whether the kill test ever wrote `value` to `key` ("c{client}:k{j % 3000}" <- Value(boot, j)).
    private static bool WasWritten(string key, string value)
    {
        string[] parts = value.Split('.');
        return parts.Length == 3 && parts[0].StartsWith('b')
            && int.TryParse(parts[0].AsSpan(1), System.Globalization.CultureInfo.InvariantCulture, out int boot)
            && int.TryParse(parts[1], System.Globalization.CultureInfo.InvariantCulture, out int j)
            && value == Value(boot, j) && key.EndsWith($":k{j % 3000}", StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(GarnetDevice.DirectPmem)]
    [InlineData(GarnetDevice.File)]
    public void LargeHashesWithATinyLogMemoryReadBackFromTheDevice(GarnetDevice device)
    {
        using GarnetNode node = GarnetNode.Start(device, Where(device), o => o.EnableAOF = false);
        using ConnectionMultiplexer redis = node.Connect(); // a hang ends at the scaled sync timeout
        IDatabase db = redis.GetDatabase();
        string big = new('h', 1000);
        const int Hashes = 10, Fields = 500;
        for (int h = 0; h < Hashes; h++)
        {
            var entries = new HashEntry[Fields];
            for (int f = 0; f < entries.Length; f++)
                entries[f] = new HashEntry($"f{f}", big + f);
            db.HashSet($"hash:{h}", entries);
        }
        GarnetServerTests.WriteKeys(db, 0, 40_000); // pushes the hash records out of the 2 MiB log memory
        // Reported on 2.2.8: a hang on the file device, EndOfStreamException in a read callback on
        // DirectPmem. Not reproduced here on 2.2.8 or 2.2.12.
        for (int h = 0; h < Hashes; h++)
        {
            HashEntry[] all = db.HashGetAll($"hash:{h}");
            Assert.Equal(Fields, all.Length);
            Assert.Equal(big + "7", (string?)all.Single(e => e.Name == "f7").Value);
        }
    }
}
