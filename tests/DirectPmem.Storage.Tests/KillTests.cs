using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using Xunit;

namespace DirectPmem.Storage.Tests;

/// <summary>
/// kill -9: a child test process (<see cref="BankChild"/>) runs a small bank whose transfers are redo records
/// in a DirectPmem log, appends durably and reports every acknowledged (transaction, LSN); the parent kills it
/// with SIGKILL at a random moment, reopens the pool and checks that every acknowledged record is there and
/// intact (or already in the checkpoint). The next round's child recovers the same pool, replays, and checks
/// its balance invariant. The bank and its format belong to this test (<see cref="Bank"/>).
/// </summary>
public sealed class KillTests(ITestOutputHelper output)
{
    private const string PoolVariable = "DIRECTPMEM_KILL_POOL";
    private const string TransactionsVariable = "DIRECTPMEM_KILL_TRANSACTIONS";
    private const string SeedVariable = "DIRECTPMEM_KILL_SEED";
    private const string CheckpointVariable = "DIRECTPMEM_KILL_CHECKPOINT_EVERY";

    [Fact]
    public void EveryAcknowledgedRecordSurvivesSigkill()
    {
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
                string report = ChildProcess.NewReportPath();
                try
                {
                    ChildProcess.Started child = StartBank(pool, report, transactions: 100_000_000, seed: round, checkpointEvery: 50 + round * 37 % 400);
                    using Process process = child.Process;
                    // Let it get going, then kill it at a random moment.
                    var watch = Stopwatch.StartNew();
                    while (ChildProcess.ReadReport(report).Length < 2 && !process.HasExited && watch.Elapsed < TestTime.Limit(TimeSpan.FromMinutes(2)))
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
                    string[] text = ChildProcess.ReadReport(report);
                    Assert.True(text.Length > 0 && text[0].StartsWith("open:", StringComparison.Ordinal),
                        $"round {round}: the child reported: {string.Join('\n', text.Take(5))}\n{OutputOf(child)}");
                    Assert.Contains($"total {Bank.Accounts * Bank.InitialBalance}", text[0], StringComparison.Ordinal);
                    List<(long Txid, long Lsn)> acks = [.. text.Skip(1).Where(l => l.StartsWith("ack ", StringComparison.Ordinal)).Select(Parse)];
                    totalAcks += acks.Count;
                    Verify(pool, acks, round);
                }
                finally
                {
                    File.Delete(report);
                }
            }
            // A last child only recovers and checks the invariant, then closes cleanly.
            string[] last = ChildProcess.RunPassing(typeof(KillTests), nameof(BankChild), Variables(pool, transactions: 0, seed: 0, checkpointEvery: 500));
            output.WriteLine($"{rounds} rounds, {killedMidRun} killed mid-run, {totalAcks} acknowledged records verified; last: {last.FirstOrDefault()}");
            Knobs.Record($"kill -9: {rounds} rounds, {killedMidRun} killed mid-run, {totalAcks} acknowledged records verified");
            Assert.True(killedMidRun >= rounds * 3 / 4, $"only {killedMidRun} of {rounds} children were killed while running");
        }
        finally
        {
            File.Delete(pool);
        }
    }

    /// <summary>
    /// The child: opens (or creates) the bank in the pool its parent names, reports "open: ... total N", makes the
    /// transfers, reporting "ack TXID LSN" once each is durable, checkpoints every so often, and reports "done".
    /// </summary>
    [Fact(Explicit = true)]
    public void BankChild()
    {
        ChildProcess.RequireChild();
        string pool = Environment.GetEnvironmentVariable(PoolVariable) ?? throw new InvalidOperationException($"{PoolVariable} is not set");
        long transactions = long.Parse(Environment.GetEnvironmentVariable(TransactionsVariable)!, CultureInfo.InvariantCulture);
        int seed = int.Parse(Environment.GetEnvironmentVariable(SeedVariable)!, CultureInfo.InvariantCulture);
        int checkpointEvery = int.Parse(Environment.GetEnvironmentVariable(CheckpointVariable)!, CultureInfo.InvariantCulture);
        using var bank = new Bank(pool);
        ChildProcess.Report(string.Create(CultureInfo.InvariantCulture,
            $"open: {(bank.Pool.NeedsRecovery ? "not closed cleanly, recovered" : "clean")}; checkpoint at LSN {bank.CheckpointLsn}, replayed {bank.Replayed} redo records, next transaction {bank.NextTransactionId}, total {bank.Total}"));
        Assert.Equal(Bank.Accounts * Bank.InitialBalance, bank.Total);
        var random = new Random(seed);
        for (long n = 0; n < transactions; n++)
        {
            (long txid, long lsn) = bank.Transfer(random.Next(Bank.Accounts), random.Next(Bank.Accounts), random.Next(1, 50));
            ChildProcess.Report(string.Create(CultureInfo.InvariantCulture, $"ack {txid} {lsn}")); // acknowledged once it is out of the process
            if ((n + 1) % checkpointEvery == 0)
            {
                bank.Checkpoint();
            }
        }
        bank.Checkpoint();
        ChildProcess.Report("done");
    }

    /// <summary>What the (exited) child wrote to stdout and stderr.</summary>
    private static string OutputOf(ChildProcess.Started child) => child.Output.Result;

    private static ChildProcess.Started StartBank(string pool, string report, long transactions, int seed, int checkpointEvery)
        => ChildProcess.Start(typeof(KillTests), nameof(BankChild), report, Variables(pool, transactions, seed, checkpointEvery));

    private static (string, string)[] Variables(string pool, long transactions, int seed, int checkpointEvery) =>
    [
        (PoolVariable, pool),
        (TransactionsVariable, transactions.ToString(CultureInfo.InvariantCulture)),
        (SeedVariable, seed.ToString(CultureInfo.InvariantCulture)),
        (CheckpointVariable, checkpointEvery.ToString(CultureInfo.InvariantCulture)),
    ];

    private static void Verify(string path, List<(long Txid, long Lsn)> acks, int round)
    {
        using PmemPool pool = PmemPool.OpenFile(path, Bank.Layout, new PoolOpenOptions { ReadOnly = true });
        Assert.True(pool.NeedsRecovery || acks.Count == 0, $"round {round}: a killed pool reads as cleanly closed");
        long root = pool.RootOffset;
        Assert.NotEqual(0, root);
        ulong word = pool.Mapping.GetReadOnlyRef<ulong>(root);
        long checkpointLsn = (long)(word >> 1);
        long checkpointNextTxid = pool.Mapping.GetReadOnlyRef<long>(root + Bank.TableSlot0 + (long)(word & 1) * 4096 + Bank.Accounts * 8);
        PmemLog log = PmemLog.Open(pool, root + Bank.LogStart);
        byte[] buffer = new byte[Bank.RecordLength];
        foreach ((long txid, long lsn) in acks)
        {
            if (lsn < checkpointLsn)
            {
                Assert.True(txid < checkpointNextTxid, $"round {round}: transaction {txid} at LSN {lsn} is before the checkpoint at {checkpointLsn} but not in its table (next {checkpointNextTxid})");
                continue;
            }
            Assert.True(lsn >= log.Head && lsn < log.Tail, $"round {round}: acknowledged LSN {lsn} (transaction {txid}) is outside [{log.Head}, {log.Tail})");
            Assert.Equal(Bank.RecordLength, log.Read(lsn, buffer));
            Assert.Equal(txid, BitConverter.ToInt64(buffer));
        }
    }

    private static (long, long) Parse(string line)
    {
        string[] parts = line.Split(' ');
        return (long.Parse(parts[1], CultureInfo.InvariantCulture), long.Parse(parts[2], CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// The child's bank, owned by this test: 16 account balances kept in memory, made durable by a write-ahead log of
    /// redo records and checkpoints, all in one pool.
    /// </summary>
    /// <remarks>
    /// Pool data area, at the root offset R: R + 0 the checkpoint word, (checkpoint LSN &lt;&lt; 1) | table slot,
    /// published failure-atomically; R + 4096 table slot 0 (16 balances and the next transaction id); R + 8192 table
    /// slot 1; R + 12288 the log. A checkpoint writes the table into the slot not in use, publishes the word naming
    /// it and the log tail, then truncates the log. Recovery loads the published slot and replays from its LSN.
    /// </remarks>
    internal sealed class Bank : IDisposable
    {
        public const string Layout = "directpmem-kill-test";
        public const int Accounts = 16;
        public const long InitialBalance = 1000;
        public const int RecordLength = 24; // txid i64, from i32, to i32, amount i64
        public const long TableSlot0 = 4096;
        public const long LogStart = 12288;

        private readonly long[] _balances = new long[Accounts];
        private readonly long _root;
        private int _slot;

        public Bank(string path)
        {
            Pool = OpenOrCreate(path);
            if (Pool.RootOffset == 0)
            {
                // First start (or a crash before the first SetRoot): the tables and the log, then the root.
                long root = Pool.DataOffset;
                Array.Fill(_balances, InitialBalance);
                WriteTable(root, 0, nextTxid: 1);
                Pool.Mapping.Publish(root, 0);
                // overwrite: a crash after an earlier Create and before SetRoot left an unreachable log there.
                PmemLog.Create(Pool, root + LogStart, (Pool.Size - root - LogStart) / 4096 * 4096, overwrite: true);
                Pool.SetRoot(root);
            }
            _root = Pool.RootOffset;
            Log = PmemLog.Open(Pool, _root + LogStart);
            ulong word = Pool.Mapping.GetReadOnlyRef<ulong>(_root);
            _slot = (int)(word & 1);
            CheckpointLsn = (long)(word >> 1);
            long table = _root + TableSlot0 + _slot * 4096L;
            for (int i = 0; i < Accounts; i++)
            {
                _balances[i] = Pool.Mapping.GetReadOnlyRef<long>(table + i * 8L);
            }
            NextTransactionId = Pool.Mapping.GetReadOnlyRef<long>(table + Accounts * 8L);
            // Records before the checkpoint are in the table already (a crash may have come before the truncate).
            foreach (LogRecord record in Log.ReadFrom(Math.Max(CheckpointLsn, Log.Head)))
            {
                Apply(record.Payload);
                Replayed++;
            }
        }

        public PmemPool Pool { get; }

        public PmemLog Log { get; }

        public long NextTransactionId { get; private set; }

        public long CheckpointLsn { get; private set; }

        public int Replayed { get; private set; }

        public long Total => _balances.Sum();

        /// <summary>Moves money between two accounts: the redo record is durable before the change is applied.</summary>
        public (long Txid, long Lsn) Transfer(int from, int to, long amount)
        {
            Span<byte> record = stackalloc byte[RecordLength];
            long txid = NextTransactionId;
            BinaryPrimitives.WriteInt64LittleEndian(record, txid);
            BinaryPrimitives.WriteInt32LittleEndian(record[8..], from);
            BinaryPrimitives.WriteInt32LittleEndian(record[12..], to);
            BinaryPrimitives.WriteInt64LittleEndian(record[16..], amount);
            long lsn;
            try
            {
                lsn = Log.Append(record);
            }
            catch (LogFullException)
            {
                Checkpoint(); // make room: everything applied so far goes into the table
                lsn = Log.Append(record);
            }
            Apply(record);
            return (txid, lsn);
        }

        /// <summary>Writes the table to the free slot, publishes it with the log position, then truncates the log.</summary>
        public void Checkpoint()
        {
            long tail = Log.Tail;
            int slot = 1 - _slot;
            WriteTable(_root, slot, NextTransactionId);
            Pool.Mapping.Publish(_root, ((ulong)tail << 1) | (uint)slot);
            _slot = slot;
            CheckpointLsn = tail;
            Log.Truncate(tail);
        }

        public void Dispose() => Pool.Dispose();

        private static PmemPool OpenOrCreate(string path)
        {
            if (File.Exists(path))
            {
                try
                {
                    return PmemPool.OpenFile(path, Layout);
                }
                catch (PoolFormatException e) when (e.Field == PoolHeaderField.Signature)
                {
                    // A kill during the very first creation: there never was a pool in this file.
                    File.Delete(path);
                }
            }
            return TestPools.CreateFile(path, 8L << 20, Layout); // /dev/shm is volatile: the test opts in
        }

        private void Apply(ReadOnlySpan<byte> record)
        {
            long txid = BinaryPrimitives.ReadInt64LittleEndian(record);
            int from = BinaryPrimitives.ReadInt32LittleEndian(record[8..]);
            int to = BinaryPrimitives.ReadInt32LittleEndian(record[12..]);
            long amount = BinaryPrimitives.ReadInt64LittleEndian(record[16..]);
            if (txid != NextTransactionId || (uint)from >= Accounts || (uint)to >= Accounts)
            {
                throw new InvalidDataException($"redo record {txid} does not follow transaction {NextTransactionId - 1}");
            }
            _balances[from] -= amount;
            _balances[to] += amount;
            NextTransactionId = txid + 1;
        }

        private void WriteTable(long root, int slot, long nextTxid)
        {
            Span<byte> table = stackalloc byte[(Accounts + 1) * 8];
            for (int i = 0; i < Accounts; i++)
            {
                BinaryPrimitives.WriteInt64LittleEndian(table[(i * 8)..], _balances[i]);
            }
            BinaryPrimitives.WriteInt64LittleEndian(table[(Accounts * 8)..], nextTxid);
            Pool.Mapping.Write(table, root + TableSlot0 + slot * 4096L);
        }
    }
}
