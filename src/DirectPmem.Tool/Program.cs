using System.CommandLine;
using System.Diagnostics;
using System.Reflection;
using System.Text.Json;
using DirectPmem;
using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Persistence;
using DirectPmem.Tool;
using Spectre.Console;

var root = new RootCommand("dpmem: device-DAX devices, emulated devices and persistence cost, from DirectPmem.");

// dpmem list
var json = new Option<bool>("--json", "-j") { Description = "Print JSON shaped like `daxctl list` instead of a table." };
var regions = new Option<bool>("--regions", "-R") { Description = "Include NVDIMM regions (like `daxctl list -R`)." };
var sysfs = new Option<string>("--sysfs") { Description = "The sysfs root to read (a fixture tree for tests).", DefaultValueFactory = _ => "/sys" };
var list = new Command("list", "List device-DAX devices (and regions) found in sysfs.") { json, regions, sysfs };
list.SetAction(parse => Run(() => Commands.List(parse.GetValue(sysfs)!, parse.GetValue(json), parse.GetValue(regions))));
root.Subcommands.Add(list);

// dpmem create
var createPath = new Argument<string>("path") { Description = "The file to create for the emulated device (it must not exist)." };
var size = new Option<string>("--size", "-s") { Description = "Device size, e.g. 512M or 4G; a multiple of --align.", Required = true };
var align = new Option<string>("--align", "-a") { Description = "Fault granularity: 4K, 2M or 1G.", DefaultValueFactory = _ => "2M" };
var create = new Command("create", "Create an emulated device-DAX device in a file.") { createPath, size, align };
create.SetAction(parse => Run(() => Commands.Create(parse.GetValue(createPath)!, parse.GetValue(size)!, parse.GetValue(align)!)));
root.Subcommands.Add(create);

// dpmem info
var infoPath = new Argument<string>("path") { Description = "A /dev/daxX.Y device or an emulated device file." };
var infoJson = new Option<bool>("--json", "-j") { Description = "Print JSON." };
var info = new Command("info", "Show a device's geometry, backing and persistence.") { infoPath, infoJson };
info.SetAction(parse => Run(() => Commands.Info(parse.GetValue(infoPath)!, parse.GetValue(infoJson))));
root.Subcommands.Add(info);

// dpmem platform
var platformJson = new Option<bool>("--json", "-j") { Description = "Print JSON." };
var platform = new Command("platform", "Show the CPU's flush instructions, eADR, and the copy engine in use.") { platformJson };
platform.SetAction(parse => Run(() => Commands.Platform(parse.GetValue(platformJson))));
root.Subcommands.Add(platform);

// dpmem bench
var iterations = new Option<int>("--iterations", "-n") { Description = "Operations per measurement.", DefaultValueFactory = _ => 200_000 };
var bench = new Command("bench", "Measure persist and copy-persist cost on shared memory in forced cache-line mode (indicative; bench/ has the BenchmarkDotNet suites).") { iterations };
bench.SetAction(parse => Run(() => Commands.Bench(parse.GetValue(iterations))));
root.Subcommands.Add(bench);

return root.Parse(args).Invoke();

static int Run(Func<int> action)
{
    try
    {
        return action();
    }
    catch (Exception e) when (e is PmemException or ArgumentException or InvalidOperationException or IOException or UnauthorizedAccessException)
    {
        AnsiConsole.MarkupLineInterpolated($"[red]dpmem: {e.GetType().Name}: {e.Message}[/]");
        return 1;
    }
}

namespace DirectPmem.Tool
{
    internal static class Commands
    {
        internal static int List(string sysfsRoot, bool asJson, bool withRegions)
        {
            var bus = new DaxBus(sysfsRoot);
            DaxTopology topology = bus.Scan();
            if (asJson)
            {
                Console.WriteLine(withRegions ? DaxListing.SerializeRegions(topology) : DaxListing.Serialize(topology.Devices));
            }
            else
            {
                var table = new Table().AddColumns("device", "chardev", "size", "align", "region", "persistence", "target node", "numa node");
                foreach (DaxDevice device in topology.Devices)
                {
                    table.AddRow(Markup.Escape(device.Name), Markup.Escape(device.DevicePath), Sizes.Format(device.Size), device.Align.ToDisplayString(),
                        device.Region?.Name ?? "-", device.Persistence.ToString(), device.TargetNode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-",
                        device.NumaNode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-");
                }
                if (topology.Devices.Count == 0)
                {
                    AnsiConsole.MarkupLineInterpolated($"[yellow]no device-DAX devices under {sysfsRoot}/bus/dax/devices[/]");
                }
                else
                {
                    AnsiConsole.Write(table);
                }
                if (withRegions && topology.Regions.Count > 0)
                {
                    var regionTable = new Table().AddColumns("region", "size", "persistence domain", "bad blocks", "deep flush", "numa node");
                    foreach (DaxRegion region in topology.Regions)
                    {
                        regionTable.AddRow(region.Name, Sizes.Format(region.Size), Markup.Escape(region.PersistenceDomainText.Length == 0 ? "unknown" : region.PersistenceDomainText),
                            region.BadBlocks.Count.ToString(System.Globalization.CultureInfo.InvariantCulture),
                            region.DeepFlushPresent ? (region.DeepFlushWritable ? "writable" : "present") : "-",
                            region.NumaNode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-");
                    }
                    AnsiConsole.Write(regionTable);
                }
            }
            foreach (DaxConfigurationException error in topology.Errors)
            {
                Console.Error.WriteLine($"dpmem: warning: {error.Message}");
            }
            return 0;
        }

        internal static int Create(string path, string sizeText, string alignText)
        {
            if (!Sizes.TryParse(sizeText, out long bytes) || bytes <= 0)
            {
                throw new ArgumentException($"--size '{sizeText}' is not a size (examples: 512M, 4G).");
            }
            if (!Sizes.TryParsePageSize(alignText, out PageSize pageSize))
            {
                throw new ArgumentException($"--align '{alignText}' is not 4K, 2M or 1G.");
            }
            using DaxDevice device = DaxDevice.CreateEmulated(path, bytes, pageSize);
            AnsiConsole.MarkupLineInterpolated($"created emulated device [bold]{device.DevicePath}[/]: {Sizes.Format(device.Size)}, align {device.Align.ToDisplayString()}, {device.Persistence}");
            return 0;
        }

        internal static int Info(string path, bool asJson)
        {
            using DaxDevice device = path.StartsWith("/dev/dax", StringComparison.Ordinal) ? DaxDevice.Open(path) : DaxDevice.OpenEmulated(path, writable: false);
            if (asJson)
            {
                using var stream = Console.OpenStandardOutput();
                using var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
                writer.WriteStartObject();
                writer.WriteString("name", device.Name);
                writer.WriteString("path", device.DevicePath);
                writer.WriteNumber("size", device.Size);
                writer.WriteNumber("align", (long)device.Align);
                writer.WriteBoolean("emulated", device.IsEmulated);
                writer.WriteString("backing", device.Backing.ToString());
                writer.WriteString("persistence", device.Persistence.ToString());
                writer.WriteNumber("fault_granularity", (long)device.FaultGranularity);
                if (device.Region is not null)
                {
                    writer.WriteString("region", device.Region.Name);
                }
                writer.WriteEndObject();
                writer.Flush();
                Console.WriteLine();
                return 0;
            }
            var grid = new Grid().AddColumn().AddColumn();
            grid.AddRow("name", Markup.Escape(device.Name));
            grid.AddRow("path", Markup.Escape(device.DevicePath));
            grid.AddRow("size", $"{Sizes.Format(device.Size)} ({device.Size} bytes)");
            grid.AddRow("align", device.Align.ToDisplayString());
            grid.AddRow("emulated", device.IsEmulated ? "yes" : "no");
            grid.AddRow("backing", device.Backing.ToString());
            grid.AddRow("persistence", device.Persistence.ToString());
            grid.AddRow("fault granularity", device.FaultGranularity.ToDisplayString());
            grid.AddRow("region", device.Region?.Name ?? "-");
            AnsiConsole.Write(grid);
            return 0;
        }

        internal static int Platform(bool asJson)
        {
            CpuFeatures cpu = Pmem.Features;
            if (asJson)
            {
                using var stream = Console.OpenStandardOutput();
                using var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
                writer.WriteStartObject();
                writer.WriteString("flush_instruction", Pmem.FlushInstruction.ToString());
                writer.WriteString("flush_instruction_reason", Pmem.FlushInstructionReason);
                writer.WriteBoolean("eadr", Pmem.IsEadr);
                writer.WriteBoolean("flush_needed", Pmem.IsFlushNeeded);
                writer.WriteString("pmem_granularity", Pmem.PersistentMemoryGranularity.ToString());
                writer.WriteNumber("vector_bits", Pmem.VectorBits);
                writer.WriteBoolean("non_temporal_stores", Pmem.UsesNonTemporalStores);
                writer.WriteNumber("non_temporal_threshold", Pmem.NonTemporalThreshold);
                writer.WriteString("cpu", cpu.ToString());
                writer.WriteEndObject();
                writer.Flush();
                Console.WriteLine();
                return 0;
            }
            var grid = new Grid().AddColumn().AddColumn();
            grid.AddRow("CPU features", Markup.Escape(cpu.ToString()));
            grid.AddRow("flush instruction", $"{Pmem.FlushInstruction} ({Markup.Escape(Pmem.FlushInstructionReason)})");
            grid.AddRow("eADR", Pmem.IsEadr ? "yes: caches are in the persistence domain" : "no");
            grid.AddRow("pmem granularity", Pmem.PersistentMemoryGranularity.ToString());
            grid.AddRow("copy engine", $"{Pmem.VectorBits}-bit vectors, non-temporal stores {(Pmem.UsesNonTemporalStores ? $"from {Pmem.NonTemporalThreshold} bytes" : "off")}");
            AnsiConsole.Write(grid);
            return 0;
        }

        internal static int Bench(int iterations)
        {
            if (iterations <= 0)
            {
                throw new ArgumentException("--iterations must be positive.");
            }
            using PmemFile memfd = PmemFile.CreateMemory("dpmem-bench", 64L << 20);
            using DaxMapping map = memfd.Map(new DaxMappingOptions { ForceCacheLineGranularity = true, Populate = true });
            byte[] source = new byte[64 * 1024];
            Random.Shared.NextBytes(source);

            var table = new Table().AddColumns("operation", "ns/op", "MB/s");
            Measure(table, "store 8 B + persist", iterations, 8, i =>
            {
                long offset = (i & 4095) * 64;
                map.GetRef<long>(offset) = i;
                map.Persist(offset, 8);
            });
            Measure(table, "publish 8 B", iterations, 8, i => map.Publish((i & 4095) * 64, (ulong)i));
            foreach (int length in new[] { 256, 4096, 65536 })
            {
                int count = Math.Max(1, iterations / Math.Max(1, length / 256));
                Measure(table, $"copy-persist {Sizes.Format(length)}", count, length, i => map.Write(source.AsSpan(0, length), (i & 255) * 65536L));
            }
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine("[grey]memfd shared memory in forced cache-line mode; indicative numbers from a Stopwatch loop. For comparisons use bench/ (BenchmarkDotNet).[/]");
            return 0;
        }

        private static void Measure(Table table, string name, int iterations, int bytes, Action<int> operation)
        {
            for (int i = 0; i < Math.Min(iterations, 10_000); i++)
            {
                operation(i);
            }
            long start = Stopwatch.GetTimestamp();
            for (int i = 0; i < iterations; i++)
            {
                operation(i);
            }
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            double ns = seconds * 1e9 / iterations;
            double mbps = bytes * (double)iterations / seconds / 1e6;
            table.AddRow(name, ns.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture), mbps.ToString("0", System.Globalization.CultureInfo.InvariantCulture));
        }
    }
}
