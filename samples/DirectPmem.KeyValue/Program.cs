// An embedded persistent key-value store on DirectPmem transactions (PersistentHashTable.cs is the
// part to read): put, get, delete and iterate byte keys and values in a pool file; every operation
// is one failure-atomic transaction, so a crash never leaves a half-written value.
//
//   dotnet run --project samples/DirectPmem.KeyValue -c Release                 # the demo
//   dotnet run --project samples/DirectPmem.KeyValue -c Release -- stress FILE FIRST SEED
//       applies StressOps FIRST, FIRST+1, ... to FILE (created when FIRST is 0), printing "ack N"
//       once operation N is durable, until killed: the kill -9 test's child.
//   dotnet run --project samples/DirectPmem.KeyValue -c Release -- stress2 FILE FIRST0 FIRST1 SEED
//       the same on two threads at once, thread T applying its own keys' operations from FIRSTT
//       and printing "ack T N": the two-lane kill -9 test's child (the threads share buckets and
//       reuse each other's freed entries, so their transactions touch each other's bytes).
using System.Globalization;
using System.Text;
using DirectPmem.KeyValue;

if (args.Length == 4 && args[0] == "stress")
{
    string file = args[1];
    long first = long.Parse(args[2], CultureInfo.InvariantCulture);
    ulong seed = ulong.Parse(args[3], CultureInfo.InvariantCulture);
    using PersistentHashTable store = first == 0 ? PersistentHashTable.CreateFile(file, 8L << 20, buckets: 32) : PersistentHashTable.OpenFile(file);
    Console.WriteLine($"ready {store.Recovery}");
    Stress(store, seed, first, -1);
}

if (args.Length == 5 && args[0] == "stress2")
{
    string file = args[1];
    long[] firsts = [long.Parse(args[2], CultureInfo.InvariantCulture), long.Parse(args[3], CultureInfo.InvariantCulture)];
    ulong seed = ulong.Parse(args[4], CultureInfo.InvariantCulture);
    using PersistentHashTable store = File.Exists(file) ? PersistentHashTable.OpenFile(file) : PersistentHashTable.CreateFile(file, 8L << 20, buckets: 32);
    Console.WriteLine($"ready {store.Recovery}");
    Thread[] threads = [new(() => Stress(store, seed, firsts[0], 0)), new(() => Stress(store, seed, firsts[1], 1))];
    foreach (Thread thread in threads)
    {
        thread.Start();
    }
    foreach (Thread thread in threads)
    {
        thread.Join();
    }
}

static void Stress(PersistentHashTable store, ulong seed, long first, int thread)
{
    for (long i = first; ; i++)
    {
        (byte[] key, byte[]? value) = StressOps.Op(seed, i, thread);
        if (value is null)
        {
            store.Delete(key);
        }
        else
        {
            store.Put(key, value);
        }
        Console.WriteLine(thread < 0 ? $"ack {i}" : $"ack {thread} {i}");
    }
}

string path = Path.Combine(Path.GetTempPath(), $"directpmem-kv-{Environment.ProcessId}.pool");
try
{
    using (PersistentHashTable store = PersistentHashTable.CreateFile(path, 16L << 20))
    {
        store.Put("apple"u8, "red"u8);
        store.Put("banana"u8, "yellow"u8);
        store.Put("cherry"u8, "dark red"u8);
        store.Put("apple"u8, "green"u8);          // replaced in place, atomically
        store.Delete("banana"u8);
        Console.WriteLine($"apple  -> {Encoding.UTF8.GetString(store.Get("apple"u8)!)}");
        Console.WriteLine($"banana -> {(store.Get("banana"u8) is null ? "(deleted)" : "?")}");
    }
    using (PersistentHashTable store = PersistentHashTable.OpenFile(path))   // reopen: recovery runs first
    {
        Console.WriteLine($"reopened: {store.Recovery}");
        foreach ((byte[] key, byte[] value) in store.Entries())
        {
            Console.WriteLine($"  {Encoding.UTF8.GetString(key)} = {Encoding.UTF8.GetString(value)}");
        }
    }
}
finally
{
    File.Delete(path);
}
