// DirectPmem write-ahead log sample: a bank of 16 accounts whose transfers are redo records in a
// DirectPmem log; checkpoints write the table and truncate the log; a restart recovers and replays.
//
//   dotnet run --project samples/DirectPmem.WriteAheadLog -- --pool /var/tmp/wal.pool --transactions 20000
//   dotnet run --project samples/DirectPmem.WriteAheadLog -- --pool /var/tmp/wal.pool --crash-at random
//   dotnet run --project samples/DirectPmem.WriteAheadLog -- --pool /var/tmp/wal.pool --transactions 0
//
// --crash-at random kills the process with SIGKILL at a random moment mid-append; the next run
// recovers, replays and checks that the total balance is unchanged. --ack prints "ack TXID LSN"
// for every transfer once it is durable (the kill -9 test reads these).
using System.Diagnostics;
using System.Globalization;
using DirectPmem.Samples.WriteAheadLog;

string pool = "/var/tmp/directpmem-wal.pool";
long transactions = 20_000;
bool crash = false;
bool ack = false;
int seed = Environment.TickCount;
int checkpointEvery = 500;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--pool": pool = args[++i]; break;
        case "--transactions": transactions = long.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--crash-at": crash = args[++i] == "random"; break;
        case "--ack": ack = true; break;
        case "--seed": seed = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--checkpoint-every": checkpointEvery = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        default:
            Console.Error.WriteLine("usage: [--pool PATH] [--transactions N] [--crash-at random|none] [--ack] [--seed N] [--checkpoint-every N]");
            return 2;
    }
}

using var db = new WalDatabase(pool);
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"open: {(db.Pool.NeedsRecovery ? "not closed cleanly, recovered" : "clean")}; checkpoint at LSN {db.CheckpointLsn}, replayed {db.Replayed} redo records, next transaction {db.NextTransactionId}, total {db.Total}"));
if (db.Total != WalDatabase.Accounts * WalDatabase.InitialBalance)
{
    Console.Error.WriteLine($"INVARIANT BROKEN: total balance {db.Total}");
    return 3;
}

var random = new Random(seed);
if (crash)
{
    int delay = random.Next(20, 400);
    new Thread(() =>
    {
        Thread.Sleep(delay);
        Process.GetCurrentProcess().Kill(); // SIGKILL, in the middle of whatever append is running
    }) { IsBackground = true }.Start();
    transactions = long.MaxValue;
}

using var stdout = new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = false };
var watch = Stopwatch.StartNew();
for (long n = 0; n < transactions; n++)
{
    int from = random.Next(WalDatabase.Accounts);
    int to = random.Next(WalDatabase.Accounts);
    (long txid, long lsn) = db.Transfer(from, to, random.Next(1, 50));
    if (ack)
    {
        stdout.Write(string.Create(CultureInfo.InvariantCulture, $"ack {txid} {lsn}\n"));
        stdout.Flush(); // acknowledged only once it is out of the process
    }
    if ((n + 1) % checkpointEvery == 0)
    {
        db.Checkpoint();
    }
}
db.Checkpoint();
stdout.Flush();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"{transactions} transfers in {watch.Elapsed.TotalMilliseconds:F0} ms; total {db.Total}; log head {db.Log.Head}, tail {db.Log.Tail}"));
return 0;
