using System.Diagnostics;
using System.Globalization;
using DirectPmem.Samples.WriteAheadLog;
using DirectPmem.TestSupport;
using Xunit;

namespace DirectPmem.Storage.Tests;

/// <summary>
/// kill -9: the write-ahead-log sample runs as a child process, appends durably and prints every
/// acknowledged (transaction, LSN); the parent kills it with SIGKILL at a random moment, reopens the
/// pool and checks that every acknowledged record is there and intact (or already in the checkpoint).
/// The next round's child recovers the same pool, replays, and checks its balance invariant.
/// </summary>
public sealed class KillTests(ITestOutputHelper output)
{
    [Fact]
    public void EveryAcknowledgedRecordSurvivesSigkill()
    {
        string child = Path.Combine(AppContext.BaseDirectory, "DirectPmem.WriteAheadLog.dll");
        Assert.True(File.Exists(child), $"the sample is not next to the tests: {child}");
        // Process death keeps the page cache, so a tmpfs file shows the same thing faster than ext4 msync.
        string directory = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        string pool = Path.Combine(directory, $"directpmem-kill-{Guid.NewGuid():N}.pool");
        var random = new Random(4242);
        int rounds = Knobs.KillRounds;
        long totalAcks = 0;
        int killedMidRun = 0;
        try
        {
            for (int round = 0; round < rounds; round++)
            {
                var lines = new List<string>();
                using var process = Start(child, $"--pool {pool} --transactions 100000000 --ack --seed {round} --checkpoint-every {50 + round * 37 % 400}", lines);
                // Let it get going, then kill it at a random moment.
                var watch = Stopwatch.StartNew();
                while (Count(lines) < 2 && !process.HasExited && watch.Elapsed < TestTime.Limit(TimeSpan.FromMinutes(2)))
                {
                    Thread.Sleep(1);
                }
                Thread.Sleep(random.Next(0, 120));
                if (!process.HasExited)
                {
                    process.Kill(); // SIGKILL
                    killedMidRun++;
                }
                process.WaitForExit();
                string[] text;
                lock (lines)
                {
                    text = [.. lines];
                }
                Assert.True(text.Length > 0 && text[0].StartsWith("open:", StringComparison.Ordinal), $"round {round}: the child said: {string.Join('\n', text.Take(5))}");
                Assert.Contains("total 16000", text[0], StringComparison.Ordinal);
                List<(long Txid, long Lsn)> acks = [.. text.Skip(1).Where(l => l.StartsWith("ack ", StringComparison.Ordinal)).Select(Parse)];
                totalAcks += acks.Count;
                Verify(pool, acks, round);
            }
            // A last child only recovers and checks the invariant, then closes cleanly.
            var last = new List<string>();
            using (Process final = Start(child, $"--pool {pool} --transactions 0", last))
            {
                final.WaitForExit();
                Assert.Equal(0, final.ExitCode);
            }
            output.WriteLine($"{rounds} rounds, {killedMidRun} killed mid-run, {totalAcks} acknowledged records verified; last: {last.FirstOrDefault()}");
            Knobs.Record($"kill -9: {rounds} rounds, {killedMidRun} killed mid-run, {totalAcks} acknowledged records verified");
            Assert.True(killedMidRun >= rounds * 3 / 4, $"only {killedMidRun} of {rounds} children were killed while running");
        }
        finally
        {
            File.Delete(pool);
        }
    }

    private static void Verify(string path, List<(long Txid, long Lsn)> acks, int round)
    {
        using PmemPool pool = PmemPool.OpenFile(path, WalDatabase.Layout, new PoolOpenOptions { ReadOnly = true });
        Assert.True(pool.NeedsRecovery || acks.Count == 0, $"round {round}: a killed pool reads as cleanly closed");
        long root = pool.RootOffset;
        Assert.NotEqual(0, root);
        ulong word = pool.Mapping.GetReadOnlyRef<ulong>(root);
        long checkpointLsn = (long)(word >> 1);
        long checkpointNextTxid = pool.Mapping.GetReadOnlyRef<long>(root + WalDatabase.TableSlot0 + (long)(word & 1) * 4096 + WalDatabase.Accounts * 8);
        PmemLog log = PmemLog.Open(pool, root + WalDatabase.LogStart);
        byte[] buffer = new byte[WalDatabase.RecordLength];
        foreach ((long txid, long lsn) in acks)
        {
            if (lsn < checkpointLsn)
            {
                Assert.True(txid < checkpointNextTxid, $"round {round}: transaction {txid} at LSN {lsn} is before the checkpoint at {checkpointLsn} but not in its table (next {checkpointNextTxid})");
                continue;
            }
            Assert.True(lsn >= log.Head && lsn < log.Tail, $"round {round}: acknowledged LSN {lsn} (transaction {txid}) is outside [{log.Head}, {log.Tail})");
            Assert.Equal(WalDatabase.RecordLength, log.Read(lsn, buffer));
            Assert.Equal(txid, BitConverter.ToInt64(buffer));
        }
    }

    private static Process Start(string child, string arguments, List<string> lines)
    {
        var info = new ProcessStartInfo(DotnetHost.Path, $"\"{child}\" {arguments}")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (lines)
                {
                    lines.Add(e.Data);
                }
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (lines)
                {
                    lines.Add("stderr: " + e.Data);
                }
            }
        };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static int Count(List<string> lines)
    {
        lock (lines)
        {
            return lines.Count;
        }
    }

    private static (long, long) Parse(string line)
    {
        string[] parts = line.Split(' ');
        return (long.Parse(parts[1], CultureInfo.InvariantCulture), long.Parse(parts[2], CultureInfo.InvariantCulture));
    }
}
