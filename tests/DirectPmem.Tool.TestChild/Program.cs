using DirectPmem.Mapping;

// persist: maps 2 MiB of shared memory in forced cache-line mode and persists in a loop until
//          stdin closes or 120 s pass. idle: never touches DirectPmem (a .NET process without it).
// Prints "ready" once the work has started.
string mode = args.Length > 0 ? args[0] : "persist";
var deadline = DateTime.UtcNow.AddSeconds(120);
var stop = new ManualResetEventSlim();
_ = Task.Run(() =>
{
    Console.In.ReadToEnd();
    stop.Set();
});
if (mode == "idle")
{
    Console.WriteLine("ready");
    stop.Wait(TimeSpan.FromSeconds(120));
    return 0;
}
using DaxMapping map = DaxMapping.CreateAnonymous(2 << 20, new DaxMappingOptions { ForceCacheLineGranularity = true });
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
