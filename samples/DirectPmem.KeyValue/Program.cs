// An embedded persistent key-value store on DirectPmem transactions (PersistentHashTable.cs is the
// part to read): put, get, delete and iterate byte keys and values in a pool file; every operation
// is one failure-atomic transaction, so a crash never leaves a half-written value.
//
//   dotnet run --project samples/DirectPmem.KeyValue -c Release                 # the demo
//   dotnet run --project samples/DirectPmem.KeyValue -c Release -- stress FILE FIRST SEED
//       applies StressOps FIRST, FIRST+1, ... to FILE (created when FIRST is 0), printing "ack N"
//       once operation N is durable, until killed: the kill -9 test's child.
using System.Text;
using DirectPmem.KeyValue;

if (args.Length == 4 && args[0] == "stress")
{
    string file = args[1];
    long first = long.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture);
    ulong seed = ulong.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture);
    using PersistentHashTable store = first == 0 ? PersistentHashTable.CreateFile(file, 8L << 20, buckets: 32) : PersistentHashTable.OpenFile(file);
    Console.WriteLine($"ready {store.Recovery}");
    for (long i = first; ; i++)
    {
        (byte[] key, byte[]? value) = StressOps.Op(seed, i);
        if (value is null)
        {
            store.Delete(key);
        }
        else
        {
            store.Put(key, value);
        }
        Console.WriteLine($"ack {i}");
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
