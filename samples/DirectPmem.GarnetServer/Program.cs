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
//   --checkpoint-secs N  take a checkpoint every N seconds (0: only on SAVE), so the AOF
//                        and the recovery time stay bounded                           [60]
//   --no-recover         start empty instead of recovering checkpoint + AOF; refused when the
//                        device already holds data, unless --discard-existing is given too
//   --discard-existing   with --no-recover: delete what the device holds before starting
//   --local-dir DIR      baseline: Garnet's own RandomAccess local-file device in DIR instead of DirectPmem
//   --bench-aof-null-device
//                        benchmark only (bench/garnet/run.sh CEILING=1): the AOF goes to Tsavorite's
//                        NullDevice, which stores nothing and completes at once; acknowledged writes
//                        are NOT durable and are not recovered. It measures what Garnet reaches with an
//                        AOF device that costs nothing, the ceiling for any device. Starts with a
//                        warning line on stderr
//
// The volume is a named structure ("garnet", kind GarnetVolume) of a DirectPmem.Storage pool of layout
// "DirectPmem.Garnet" that takes the whole device: `dpmem check DEVICE` and `dpmem info DEVICE` show
// the pool and the volume. A device holding a volume of the old format (before volumes lived in a
// pool) is refused with a line that says how to recreate it.
//
// Cluster mode (Garnet's hash slots over primaries, each with replicas fed by AOF shipping; every
// node its own process with its own device; form the cluster with CLUSTER ADDSLOTSRANGE, MEET and
// REPLICATE, see the README's Garnet section):
//   --cluster                  run as a cluster node; its configuration (node id, slots, epoch,
//                              primary) is kept on the node's device, so a restart rejoins
//   --cluster-timeout N        seconds a node must be unreachable before the others count it
//                              as failed (Garnet's ClusterTimeout)                   [Garnet's default]
//   --cluster-reconnect-secs N seconds between a replica's attempts to re-attach to its primary after
//                              the link failed (0: do not retry)                                  [1]
//   --resume-with-data         a replica restarted from its device serves what the device holds
//                              while it re-attaches (Garnet's ClusterReplicaResumeWithData). Off
//                              by default: after a failover, a rejoined node resumed this way was
//                              seen to miss a write of its new primary (docs/garnet-known-defects.md)
//
// Options that would be ignored are refused with one line on stderr and exit code 2: --size on
// a device that exists, --size or --mode on /dev/dax, --device, --size or --mode with
// --local-dir, --commit-per-op with --no-aof, --cluster with --no-aof (replication ships the AOF),
// a cluster option (--cluster-timeout, --cluster-reconnect-secs, --resume-with-data) without
// --cluster, --bench-aof-null-device with --no-aof or --cluster. So is a number that does not parse. Settings known
// to lose acknowledged writes in Garnet itself (docs/garnet-known-defects.md) start with a
// warning line on stderr. Garnet logs warnings and errors to stderr (a dropped connection leaves
// a line).
using System.Globalization;
using System.Net;
using DirectPmem.Driver;
using DirectPmem.Garnet;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Persistence;
using Garnet;
using Garnet.server;
using Microsoft.Extensions.Logging;
using Tsavorite.core;

var settings = new Dictionary<string, string>(StringComparer.Ordinal);
var flags = new HashSet<string>(StringComparer.Ordinal);
string[] known = ["--device", "--size", "--mode", "--port", "--memory", "--page", "--segment", "--index", "--checkpoint-secs", "--local-dir",
    "--cluster-timeout", "--cluster-reconnect-secs"];
string[] knownFlags = ["--no-aof", "--commit-per-op", "--no-recover", "--discard-existing", "--cluster", "--resume-with-data", "--bench-aof-null-device"];
for (int i = 0; i < args.Length; i++)
{
    if (knownFlags.Contains(args[i]))
        flags.Add(args[i]);
    else if (known.Contains(args[i]) && i + 1 < args.Length)
        settings[args[i]] = args[++i];
    else
        return Refuse($"unknown or incomplete option '{args[i]}'. See the comment at the top of samples/DirectPmem.GarnetServer/Program.cs.");
}
string Get(string name, string fallback) => settings.GetValueOrDefault(name, fallback);

string devicePath = Get("--device", "garnet.dpmem");
string mode = Get("--mode", "pmem");
string? localDir = settings.GetValueOrDefault("--local-dir");
if (!TryInt("--port", "6379", 0, 65535, out int port) || !TryInt("--checkpoint-secs", "60", 0, int.MaxValue, out int checkpointSecs))
    return 2;
bool cluster = flags.Contains("--cluster");
if (!TryInt("--cluster-timeout", "60", 1, int.MaxValue, out int clusterTimeout) || !TryInt("--cluster-reconnect-secs", "1", 0, int.MaxValue, out int clusterReconnectSecs))
    return 2;
if (!TrySize("--memory", "64m", out long memory) || !TrySize("--page", "1m", out long page) || !TrySize("--segment", "32m", out _)
    || !TrySize("--index", "16m", out _) || !TrySize("--size", "1g", out long newDeviceSize))
{
    return 2;
}
if (mode is not ("pmem" or "msync"))
    return Refuse($"--mode must be pmem or msync, not '{mode}'.");
bool isDevDax = devicePath.StartsWith("/dev/dax", StringComparison.Ordinal);
if (localDir is not null)
{
    foreach (string ignored in (string[])["--device", "--size", "--mode"])
    {
        if (settings.ContainsKey(ignored))
            return Refuse($"{ignored} does not apply with --local-dir (Garnet's own file device in that directory); drop one of them.");
    }
}
else if (isDevDax)
{
    foreach (string ignored in (string[])["--size", "--mode"])
    {
        if (settings.ContainsKey(ignored))
            return Refuse($"{ignored} does not apply to {devicePath}: a device-DAX device has the size and persistence its configuration gave it.");
    }
}
else if (settings.ContainsKey("--size") && File.Exists(devicePath))
{
    return Refuse($"--size does not apply: {devicePath} exists and keeps its size (remove the file to make a new device of another size).");
}
if (flags.Contains("--commit-per-op") && flags.Contains("--no-aof"))
    return Refuse("--commit-per-op commits the AOF, and --no-aof turns it off; drop one of them.");
if (cluster && flags.Contains("--no-aof"))
    return Refuse("--cluster replicates by shipping the AOF, and --no-aof turns it off; drop one of them.");
if (!cluster && settings.Keys.FirstOrDefault(k => k is "--cluster-timeout" or "--cluster-reconnect-secs") is string clusterOnly)
    return Refuse($"{clusterOnly} only applies with --cluster.");
if (!cluster && flags.Contains("--resume-with-data"))
    return Refuse("--resume-with-data only applies with --cluster.");
bool aofNullDevice = flags.Contains("--bench-aof-null-device");
if (aofNullDevice && flags.Contains("--no-aof"))
    return Refuse("--bench-aof-null-device replaces the AOF's device, and --no-aof turns the AOF off; drop one of them.");
if (aofNullDevice && cluster)
    return Refuse("--bench-aof-null-device discards the AOF that --cluster replicates; drop one of them.");
if (flags.Contains("--discard-existing") && !flags.Contains("--no-recover"))
    return Refuse("--discard-existing only goes with --no-recover.");
if (memory < MinimumSafeLogMemory && !flags.Contains("--no-aof"))
{
    Console.Error.WriteLine($"warning: --memory {Get("--memory", "64m")} is below {MinimumSafeLogMemory >> 20}m: with a log memory this small Garnet has lost acknowledged writes across checkpoint + kill + AOF recovery, and has crashed at the first checkpoint after an AOF recovery (docs/garnet-known-defects.md).");
}
if (aofNullDevice)
{
    Console.Error.WriteLine("warning: --bench-aof-null-device: the AOF goes to Tsavorite's NullDevice, which stores nothing; acknowledged writes are not durable and are not recovered (a benchmark's ceiling, not a server for data).");
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
    UseAofNullDevice = aofNullDevice,
    AofSegmentSize = Get("--segment", "32m"),
    // Garnet wants AOF pages at least twice the log page, and AOF memory of several AOF pages.
    AofPageSize = Math.Max(1L << 20, 2 * page).ToString(CultureInfo.InvariantCulture),
    AofMemorySize = Math.Max(16L << 20, 8 * page).ToString(CultureInfo.InvariantCulture),
    // Garnet refuses a commit frequency without AOF; 0 with AOF means commit on every operation.
    CommitFrequencyMs = flags.Contains("--commit-per-op") || flags.Contains("--no-aof") ? 0 : 100,
    WaitForCommit = flags.Contains("--commit-per-op"),
    // Garnet refuses scheduled checkpoints with a storage tier off; ours is always on.
    CheckpointFrequencySecs = checkpointSecs,
    Recover = !flags.Contains("--no-recover"),
    QuietMode = true,
};
if (cluster)
{
    options.EnableCluster = true;
    if (settings.ContainsKey("--cluster-timeout"))
        options.ClusterTimeout = clusterTimeout;
    options.ClusterReplicationReestablishmentTimeout = clusterReconnectSecs;
    options.ClusterReplicaResumeWithData = flags.Contains("--resume-with-data");
}
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
        string[] existing = [.. new[] { options.LogDir, options.CheckpointDir }.Where(Directory.Exists)
            .SelectMany(d => Directory.EnumerateFiles(d, "*", SearchOption.AllDirectories))];
        if (!options.Recover && existing.Length > 0)
        {
            if (!flags.Contains("--discard-existing"))
                return Refuse(NoRecoverRefusal(localDir, $"{existing.Length} files"));
            Directory.Delete(options.LogDir, recursive: true);
            if (Directory.Exists(options.CheckpointDir))
                Directory.Delete(options.CheckpointDir, recursive: true);
            Console.WriteLine($"discarded {existing.Length} files under {Path.GetFullPath(localDir)}");
        }
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
                : DaxDevice.CreateEmulated(devicePath, newDeviceSize, PageSize.Pte))
            {
                deviceSize = emulated.Size;
            }
            file = PmemFile.Open(devicePath);
            // A file on tmpfs (/dev/shm, a tmpfs /tmp) is volatile memory: allowed for an emulated device, and said below.
            volume = PmemVolume.OpenOrCreate(file.Map(new DaxMappingOptions { Length = deviceSize, ForceCacheLineGranularity = mode == "pmem" }),
                new PmemVolumeOptions { AllowVolatile = true });
        }
        // The volume lives in a DirectPmem.Storage pool (its header and backup, shutdown and bad-block checks):
        // `dpmem check` and `dpmem info` on the device show it.
        Console.WriteLine($"pool      {devicePath}: layout \"{volume.Pool.Layout}\", volume {volume.Structure.Entry}" +
                          $"{(volume.Pool.WasCleanlyClosed ? "" : "; not closed cleanly, Garnet recovers from its checkpoint and AOF")}" +
                          $"{(volume.Pool.DirtyShutdownDetected ? "; a dirty shutdown of the NVDIMMs was detected: stores in flight at a power failure may be lost" : "")}" +
                          $"{(volume.Pool.CreatedOnVolatileMemory ? "; created on volatile memory: its contents do not survive a reboot" : "")}");
        int held = volume.GetDeviceNames().Count;
        if (!options.Recover && held > 0)
        {
            if (!flags.Contains("--discard-existing"))
                return Refuse(NoRecoverRefusal(devicePath, $"{held} devices ({string.Join(", ", volume.GetDeviceNames().Take(3))}, ...)"));
            // Every device under the root: the log, the checkpoints and the AOF.
            volume.CreateDeviceFactoryCreator().Create("").Delete(new FileDescriptor("", null));
            Console.WriteLine($"discarded {held} devices on {devicePath}");
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

    // Warnings and errors only: a connection Garnet drops after an exception leaves a line on
    // stderr, and a healthy server stays quiet.
    using ILoggerFactory loggers = LoggerFactory.Create(b => b
        .SetMinimumLevel(LogLevel.Warning)
        .AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; })
        .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));
    using var server = new GarnetServer(options, loggers);
    server.Start();
    Console.WriteLine($"listening 127.0.0.1:{port} (AOF {(options.EnableAOF ? (options.WaitForCommit ? "on, commit per operation" : "on") + (aofNullDevice ? ", on the null device: NOT durable" : "") : "off")}, storage tier on, {(checkpointSecs == 0 ? "checkpoints only on SAVE" : $"a checkpoint every {checkpointSecs} s")}{(cluster ? ", cluster mode" : "")})");
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

static int Refuse(string message)
{
    Console.Error.WriteLine($"error: {message}");
    return 2;
}

static string NoRecoverRefusal(string where, string what) =>
    $"--no-recover would start empty over {where}, which holds {what}; the next normal start would recover that old data " +
    "and drop writes acknowledged in between. Add --discard-existing to delete it first, or drop --no-recover to recover it.";

bool TryInt(string name, string fallback, int min, int max, out int value)
{
    string text = Get(name, fallback);
    if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value) && value >= min && value <= max)
        return true;
    Refuse($"{name} takes a whole number from {min} to {max}, not '{text}'.");
    return false;
}

bool TrySize(string name, string fallback, out long value)
{
    string text = Get(name, fallback);
    if (TryParseSize(text, out value) && value > 0)
        return true;
    Refuse($"{name} takes a size such as 64k, 32m or 1g (bytes, or k/m/g), not '{text}'.");
    return false;
}

static bool TryParseSize(string text, out long value)
{
    value = 0;
    string t = text.Trim().ToLowerInvariant();
    if (t.Length == 0)
        return false;
    int shift = t[^1] switch { 'k' => 10, 'm' => 20, 'g' => 30, _ => 0 };
    if (!long.TryParse(shift == 0 ? t : t[..^1], NumberStyles.None, CultureInfo.InvariantCulture, out long count) || count > long.MaxValue >> shift)
        return false;
    value = count << shift;
    return true;
}

/// <summary>The constants of the sample.</summary>
internal static partial class Program
{
    /// <summary>
    /// Below this log memory (with AOF on) the sample warns. Two defects of Garnet itself, on both devices
    /// (docs/garnet-known-defects.md): with 2 MiB, acknowledged writes were lost across checkpoint + kill +
    /// AOF recovery; with 16 MiB and ~400,000 keys, a node recovered from its checkpoint and AOF crashed at
    /// its next checkpoint every time (IndexOutOfRangeException while flushing a page), while 32, 64 and
    /// 256 MiB recovered the same files. The crash depends on the data outgrowing the log memory, so 64 MiB
    /// (the default) is a margin, not a proven bound.
    /// </summary>
    private const long MinimumSafeLogMemory = 64L << 20;
}
