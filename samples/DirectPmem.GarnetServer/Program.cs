// A Garnet server (Redis-compatible) with its hybrid log (storage tier), append-only file and
// checkpoints on DirectPmem: by default an emulated device-DAX device in a local file, created
// on first start and recovered on every later one. Listens on 127.0.0.1 only.
//
//   dotnet run --project samples/DirectPmem.GarnetServer -c Release
//   dotnet run --project samples/DirectPmem.GarnetServer -c Release -- --device /dev/dax0.0
//   redis-cli -p 6379 set hello world
//
// Options (all optional):
//   --device PATH        emulated device file (created if missing) or /dev/daxX.Y   [./garnet.dpmem]
//   --size SIZE          size of a new emulated device, e.g. 1g                      [1g]
//   --mode pmem|msync    emulated device in a file: "pmem" flushes cache lines (the cost model of
//                        real pmem; survives a process crash, not a power failure of a non-pmem
//                        file); "msync" writes pages back (durable on the file system)   [pmem]
//   --port N             TCP port on 127.0.0.1 (0 picks a free one)                   [6379]
//   --memory SIZE        log memory; smaller than the data spills to the device       [64m]
//   --page SIZE          log page size                                              [1m]
//   --segment SIZE       log and AOF segment size on the device                     [32m]
//   --index SIZE         hash index size                                            [16m]
//   --no-aof             no append-only file (AOF is on by default)
//   --commit-per-op      AOF commit on every operation, reply after the commit (durable writes)
//   --checkpoint-secs N  take a checkpoint every N seconds (0: only on SAVE)           [0]
//   --no-recover         start empty instead of recovering checkpoint + AOF
//   --local-dir DIR      baseline: Garnet's own RandomAccess local-file device in DIR instead of DirectPmem
using System.Globalization;
using System.Net;
using DirectPmem.Driver;
using DirectPmem.Garnet;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Persistence;
using Garnet;
using Garnet.server;
using Tsavorite.core;

var settings = new Dictionary<string, string>(StringComparer.Ordinal);
var flags = new HashSet<string>(StringComparer.Ordinal);
string[] known = ["--device", "--size", "--mode", "--port", "--memory", "--page", "--segment", "--index", "--checkpoint-secs", "--local-dir"];
string[] knownFlags = ["--no-aof", "--commit-per-op", "--no-recover"];
for (int i = 0; i < args.Length; i++)
{
    if (knownFlags.Contains(args[i]))
        flags.Add(args[i]);
    else if (known.Contains(args[i]) && i + 1 < args.Length)
        settings[args[i]] = args[++i];
    else
    {
        Console.Error.WriteLine($"error: unknown or incomplete option '{args[i]}'. See the comment at the top of samples/DirectPmem.GarnetServer/Program.cs.");
        return 2;
    }
}
string Get(string name, string fallback) => settings.GetValueOrDefault(name, fallback);

string devicePath = Get("--device", "garnet.dpmem");
string mode = Get("--mode", "pmem");
int port = int.Parse(Get("--port", "6379"), CultureInfo.InvariantCulture);
int checkpointSecs = int.Parse(Get("--checkpoint-secs", "0"), CultureInfo.InvariantCulture);
string? localDir = settings.GetValueOrDefault("--local-dir");
if (mode is not ("pmem" or "msync"))
{
    Console.Error.WriteLine($"error: --mode must be pmem or msync, not '{mode}'.");
    return 2;
}
if (port == 0)
{
    using var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
    probe.Start();
    port = ((IPEndPoint)probe.LocalEndpoint).Port;
}

var options = new GarnetServerOptions
{
    EndPoints = [new IPEndPoint(IPAddress.Loopback, port)],
    EnableStorageTier = true,
    LogMemorySize = Get("--memory", "64m"),
    PageSize = Get("--page", "1m"),
    SegmentSize = Get("--segment", "32m"),
    ObjectLogSegmentSize = Get("--segment", "32m"),
    IndexMemorySize = Get("--index", "16m"),
    EnableAOF = !flags.Contains("--no-aof"),
    AofSegmentSize = Get("--segment", "32m"),
    // Garnet wants AOF pages at least twice the log page, and AOF memory of several AOF pages.
    AofPageSize = Math.Max(1L << 20, 2 * ParseSize(Get("--page", "1m"))).ToString(CultureInfo.InvariantCulture),
    AofMemorySize = Math.Max(16L << 20, 8 * ParseSize(Get("--page", "1m"))).ToString(CultureInfo.InvariantCulture),
    // Garnet refuses a commit frequency without AOF; 0 with AOF means commit on every operation.
    CommitFrequencyMs = flags.Contains("--commit-per-op") || flags.Contains("--no-aof") ? 0 : 100,
    WaitForCommit = flags.Contains("--commit-per-op"),
    CheckpointFrequencySecs = checkpointSecs,
    Recover = !flags.Contains("--no-recover"),
    QuietMode = true,
};

DaxDevice? device = null;
PmemFile? file = null;
long deviceSize;
PmemVolume? volume = null;
try
{
    if (localDir is not null)
    {
        Directory.CreateDirectory(localDir);
        options.LogDir = Path.Combine(localDir, "log");
        options.CheckpointDir = Path.Combine(localDir, "checkpoints");
        options.DeviceType = DeviceType.RandomAccess;
        Console.WriteLine($"storage   Garnet's RandomAccess local-file device in {Path.GetFullPath(localDir)} (baseline)");
    }
    else
    {
        if (devicePath.StartsWith("/dev/dax", StringComparison.Ordinal))
        {
            device = DaxBus.Default.OpenCharDevice(devicePath);
            volume = PmemVolume.OpenOrCreateOnDevice(device);
        }
        else
        {
            // An emulated device in a file. Its data is the file's first device.Size bytes (the
            // descriptor follows); map them through PmemFile so that forced cache-line mode is
            // honoured (DaxDevice.Map of an emulated device does not pass that option on).
            using (DaxDevice emulated = File.Exists(devicePath)
                ? DaxDevice.OpenEmulated(devicePath)
                : DaxDevice.CreateEmulated(devicePath, ParseSize(Get("--size", "1g")), PageSize.Pte))
            {
                deviceSize = emulated.Size;
            }
            file = PmemFile.Open(devicePath);
            volume = PmemVolume.OpenOrCreate(file.Map(new DaxMappingOptions { Length = deviceSize, ForceCacheLineGranularity = mode == "pmem" }));
        }
        options.UsePmemVolume(volume);
        string how = device is null
            ? (mode == "pmem" ? "emulated, forced cache-line flushes (pmem cost model)" : "emulated, msync page write-back")
            : "device-DAX";
        Console.WriteLine($"storage   DirectPmem volume on {devicePath} ({how}, {volume.Mapping.Granularity}): " +
                          $"{volume.DataCapacity >> 20} MiB data, {volume.FreeBytes >> 20} MiB free, {volume.ChunkSize >> 10} KiB chunks");
        Console.WriteLine($"persist   {volume.Mapping.Granularity} granularity; flush instruction {Pmem.FlushInstruction} ({Pmem.FlushInstructionReason})");
    }

    using var stop = new ManualResetEventSlim();
    Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Set(); };
    using var term = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Set(); });

    using var server = new GarnetServer(options);
    server.Start();
    Console.WriteLine($"listening 127.0.0.1:{port} (AOF {(options.EnableAOF ? (options.WaitForCommit ? "on, commit per operation" : "on") : "off")}, storage tier on)");
    Console.WriteLine($"READY {port}");
    Console.Out.Flush();

    stop.Wait();
    Console.WriteLine("stopping");
    return 0;
}
catch (Exception e) // Garnet reports bad configuration with System.Exception: print it, exit 1

{
    Console.Error.WriteLine($"error: {e.GetType().Name}: {e.Message}");
    return 1;
}
finally
{
    volume?.Dispose();
    file?.Dispose();
    device?.Dispose();
}

static long ParseSize(string text)
{
    string t = text.Trim().ToLowerInvariant();
    long unit = t[^1] switch { 'k' => 1L << 10, 'm' => 1L << 20, 'g' => 1L << 30, _ => 1 };
    return long.Parse(unit == 1 ? t : t[..^1], CultureInfo.InvariantCulture) * unit;
}
