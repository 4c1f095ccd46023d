using DirectPmem.Mapping;
using DirectPmem.Storage;
using DirectPmem.Storage.Transactions;

// persist: maps 2 MiB of shared memory in forced cache-line mode and persists in a loop until
//          stdin closes or 120 s pass. idle: never touches DirectPmem (a .NET process without it).
// storage: a pool with a log and a transactional heap in anonymous memory (forced cache-line mode):
//          appends records (some in batches), commits transactions and aborts every fourth one.
// Prints "ready" once the work has started.
string mode = args.Length > 0 ? args[0] : "persist";
// A safety net if the parent dies without closing stdin: the parent's own limit, scaled the same way.
var deadline = DateTime.UtcNow + DirectPmem.TestSupport.TestTime.ChildProcess;
var stop = new ManualResetEventSlim();
_ = Task.Run(() =>
{
    Console.In.ReadToEnd();
    stop.Set();
});
if (mode == "idle")
{
    Console.WriteLine("ready");
    stop.Wait(DirectPmem.TestSupport.TestTime.ChildProcess);
    return 0;
}
var forced = new DaxMappingOptions { ForceCacheLineGranularity = true };
if (mode == "storage")
{
    using PmemPool pool = TestPools.Create(DaxMapping.CreateAnonymous(8 << 20, forced), "dpmem-test-child", ownsMapping: true);
    PmemLog log = PmemLog.Create(pool, pool.DataOffset, pool.DataLength / 4096 * 4096);
    using DaxMapping heapMapping = DaxMapping.CreateAnonymous(4 << 20, forced);
    using TransactionalHeap heap = TransactionalHeap.Create(heapMapping, 0, heapMapping.Length);
    using var batch = new LogBatch();
    byte[] record = new byte[100];
    log.Append(record);
    Console.WriteLine("ready");
    long n = 0;
    while (!stop.IsSet && DateTime.UtcNow < deadline)
    {
        for (int k = 0; k < 200; k++, n++)
        {
            if (log.FreeBytes < 64 << 10)
            {
                log.Truncate(log.Tail);
            }
            if (n % 10 == 0)
            {
                batch.Clear();
                batch.Add(record);
                batch.Add(record);
                batch.Add(record);
                log.Append(batch);
            }
            else
            {
                log.Append(record);
            }
            using Transaction tx = heap.Begin();
            tx.GetRef<long>(heap.RootOffset) = n;
            if (n % 4 != 0)
            {
                tx.Commit();
            }
            // Disposing an uncommitted transaction rolls it back: an abort.
        }
        Thread.Sleep(1);
    }
    return 0;
}
using DaxMapping map = DaxMapping.CreateAnonymous(2 << 20, forced);
map.Persist(0, 8);
Console.WriteLine("ready");
long i = 0;
while (!stop.IsSet && DateTime.UtcNow < deadline)
{
    for (int k = 0; k < 1000; k++, i++)
    {
        long offset = (i & 4095) * 64;
        map.GetRef<long>(offset) = i;
        map.Persist(offset, 8);
    }
    map.Write(new byte[4096], 0);
    Thread.Sleep(1);
}
return 0;
