using System.CommandLine;
using System.Globalization;
using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Tool.Cli;
using Spectre.Console;

namespace DirectPmem.Tool.Commands;

/// <summary><c>dpmem list</c>: device-DAX devices (and regions) found in sysfs, like <c>daxctl list</c>.</summary>
internal static class ListCommand
{
    internal static Command Create()
    {
        var json = new Option<bool>("--json", "-j") { Description = "Print JSON shaped like `daxctl list` instead of a table." };
        var regions = new Option<bool>("--regions", "-R") { Description = "Include NVDIMM regions (like `daxctl list -R -D`)." };
        var tiers = new Option<bool>("--tiers", "-T")
        {
            Description = "Group devices by memory tier and node: kind (NVDIMM, hmem, CXL region), persistence, HMAT latency and bandwidth, mode and memory blocks.",
        };
        Option<string> sysfs = DeviceOpener.SysfsOption();
        var command = new Command("list", "List device-DAX devices (and regions) found in sysfs.") { json, regions, tiers, sysfs };
        CommandRunner.SetAction(command, parse => Run(parse.GetValue(sysfs)!, parse.GetValue(json), parse.GetValue(regions), parse.GetValue(tiers)));
        return command;
    }

    private static int Run(string sysfsRoot, bool asJson, bool withRegions, bool byTier)
    {
        DaxTopology topology = new DaxBus(sysfsRoot).Scan();
        if (byTier && asJson)
        {
            JsonOutput.Write(TierView.Report(topology), ToolJsonContext.Default.TierReport);
        }
        else if (byTier)
        {
            WriteTierTable(sysfsRoot, topology);
        }
        else if (asJson)
        {
            if (withRegions)
            {
                JsonOutput.Write(DaxListing.Regions(topology), ToolJsonContext.Default.DaxRegionListingArray);
            }
            else
            {
                JsonOutput.Write(DaxListing.Devices(topology.Devices), ToolJsonContext.Default.DaxDeviceListingArray);
            }
        }
        else
        {
            WriteTables(sysfsRoot, topology, withRegions);
        }
        foreach (DaxConfigurationException error in topology.Errors)
        {
            Console.Error.WriteLine($"dpmem: warning: {error.Message}");
        }
        return 0;
    }

    private static void WriteTables(string sysfsRoot, DaxTopology topology, bool withRegions)
    {
        if (topology.Devices.Count == 0)
        {
            AnsiConsole.MarkupLineInterpolated($"[yellow]no device-DAX devices under {sysfsRoot}/bus/dax/devices[/]");
        }
        else
        {
            var table = new Table().AddColumns("device", "chardev", "size", "align", "region", "persistence", "target node", "numa node", "bad ranges");
            var bad = new List<(DaxDevice Device, BadRangeReport Report)>();
            foreach (DaxDevice device in topology.Devices)
            {
                BadRangeReport report = device.GetBadRanges();
                table.AddRow(Markup.Escape(device.Name), Markup.Escape(device.DevicePath), Sizes.Format(device.Size), device.Align.ToDisplayString(),
                    Markup.Escape(device.Region?.Name ?? "-"), device.Persistence.ToString(), Number(device.TargetNode), Number(device.NumaNode),
                    BadRangeListing.Cell(report));
                if (report.Ranges.Count > 0 || report.Coverage == BadRangeCoverage.Unknown)
                {
                    bad.Add((device, report));
                }
            }
            AnsiConsole.Write(table);
            foreach ((DaxDevice device, BadRangeReport report) in bad)
            {
                Console.WriteLine($"{device.Name}: {report}");
            }
        }
        if (withRegions && topology.Regions.Count > 0)
        {
            var regionTable = new Table().AddColumns("region", "size", "persistence domain", "bad blocks", "deep flush", "numa node");
            foreach (DaxRegion region in topology.Regions)
            {
                regionTable.AddRow(Markup.Escape(region.Name), Sizes.Format(region.Size),
                    Markup.Escape(region.PersistenceDomainText.Length == 0 ? "unknown" : region.PersistenceDomainText),
                    region.BadBlocks.Count.ToString(CultureInfo.InvariantCulture),
                    region.DeepFlushPresent ? (region.DeepFlushWritable ? "writable" : "present") : "-",
                    Number(region.NumaNode));
            }
            AnsiConsole.Write(regionTable);
        }
    }

    private static void WriteTierTable(string sysfsRoot, DaxTopology topology)
    {
        if (topology.Devices.Count == 0)
        {
            AnsiConsole.MarkupLineInterpolated($"[yellow]no device-DAX devices under {sysfsRoot}/bus/dax/devices[/]");
        }
        else
        {
            var table = new Table().AddColumns("tier", "node", "device", "kind", "persistence", "mode", "size",
                "access0 r/w ns, MB/s", "access1 r/w ns, MB/s", "memory blocks");
            int? previousTier = null;
            bool first = true;
            foreach (DaxDevice device in TierView.Ordered(topology))
            {
                MemoryNode? node = device.TargetMemoryNode;
                int? tier = node?.Tier?.Id;
                if (!first && tier != previousTier)
                {
                    table.AddEmptyRow();
                }
                first = false;
                previousTier = tier;
                table.AddRow(Number(tier), Number(device.TargetNode), Markup.Escape(device.Name), Markup.Escape(TierView.KindCell(device.Source)),
                    TierView.PersistenceName(device.MemoryPersistence), Markup.Escape(device.Mode), Sizes.Format(device.Size),
                    TierView.HmatCell(node?.Access0), TierView.HmatCell(node?.Access1), TierView.BlocksCell(device));
            }
            AnsiConsole.Write(table);
        }
        foreach (MemoryTier tier in topology.Tiers)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"memory_tier{tier.Id}: nodes {(tier.Nodes.Count == 0 ? "-" : string.Join(',', tier.Nodes))} (abstract distance {tier.AbstractDistanceStart}-{tier.AbstractDistanceEnd - 1})"));
        }
        if (topology.Tiers.Count == 0)
        {
            Console.WriteLine("no memory tiers (the kernel has no devices/virtual/memory_tiering)");
        }
    }

    private static string Number(int? value) => value?.ToString(CultureInfo.InvariantCulture) ?? "-";
}
