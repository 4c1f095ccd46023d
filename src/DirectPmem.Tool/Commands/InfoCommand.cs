using System.CommandLine;
using System.Globalization;
using DirectPmem.Driver;
using DirectPmem.Mapping;
using DirectPmem.Tool.Cli;
using Spectre.Console;

namespace DirectPmem.Tool.Commands;

/// <summary>What <c>dpmem info --json</c> prints.</summary>
internal sealed record InfoReport(
    string Name,
    string Path,
    long Size,
    long Align,
    bool Emulated,
    string Backing,
    string Persistence,
    long FaultGranularity,
    string Granularity,
    string? Region,
    long LabelAreaLength,
    string LabelTable,
    IReadOnlyList<LabelSlotReport> LabelSlots,
    PoolReport? Pool = null,
    BadRangeListing? BadRanges = null);

/// <summary>What <c>dpmem info --json</c> prints for a pool file.</summary>
internal sealed record PoolInfoReport(string Path, string Kind, long Size, PoolReport? Pool, int Problems, BadRangeListing? BadRanges = null);

/// <summary>
/// <c>dpmem info PATH</c>: a device's geometry, the persistence granularity a mapping gets, its label
/// table and the pool at its start; a pool file's header fields (from the copy the library would
/// use), clean/unclean state, and the log or transactional heap its root points at.
/// </summary>
internal static class InfoCommand
{
    internal static Command Create()
    {
        var path = new Argument<string>("path") { Description = "A device-DAX character device, an emulated device file or a pool file." };
        var json = new Option<bool>("--json", "-j") { Description = "Print JSON." };
        Option<string> sysfs = DeviceOpener.SysfsOption();
        var command = new Command("info", "Show a device's geometry, backing, persistence granularity and label table, or a pool's header, log and heap.") { path, json, sysfs };
        CommandRunner.SetAction(command, parse => Run(parse.GetValue(path)!, parse.GetValue(sysfs)!, parse.GetValue(json)));
        return command;
    }

    private static int Run(string path, string sysfsRoot, bool asJson)
    {
        if (!Directory.Exists(path) && File.Exists(path) && !CheckCommand.IsCharacterDevice(path, sysfsRoot) && CheckCommand.IsPoolFile(path, named: false))
        {
            return RunPool(path, sysfsRoot, asJson);
        }
        using DaxDevice device = DeviceOpener.Open(path, sysfsRoot, writable: false);
        InfoReport report = Describe(device);
        if (asJson)
        {
            JsonOutput.Write(report, ToolJsonContext.Default.InfoReport);
            return 0;
        }
        var grid = new Grid().AddColumn().AddColumn();
        grid.AddRow("name", Markup.Escape(report.Name));
        grid.AddRow("path", Markup.Escape(report.Path));
        grid.AddRow("size", $"{Sizes.Format(report.Size)} ({report.Size} bytes)");
        grid.AddRow("align", Sizes.Format(report.Align));
        grid.AddRow("emulated", report.Emulated ? "yes" : "no");
        grid.AddRow("backing", report.Backing);
        grid.AddRow("persistence", report.Persistence);
        grid.AddRow("fault granularity", Sizes.Format(report.FaultGranularity));
        grid.AddRow("persist granularity", Markup.Escape(report.Granularity));
        grid.AddRow("region", Markup.Escape(report.Region ?? "-"));
        grid.AddRow("label table", Markup.Escape(report.LabelTable));
        AddBadRanges(grid, report.BadRanges);
        AnsiConsole.Write(grid);
        foreach (LabelSlotReport slot in report.LabelSlots.Where(s => s.Published))
        {
            var table = new Table().Title($"label slot {slot.Slot}, sequence {slot.Sequence}").AddColumns("range", "offset", "length", "page size");
            foreach (LabelEntryReport entry in slot.Entries)
            {
                table.AddRow(Markup.Escape(entry.Name), entry.Offset.ToString(CultureInfo.InvariantCulture), Sizes.Format(entry.Length), Sizes.Format(entry.PageSize));
            }
            AnsiConsole.Write(table);
            foreach (string problem in slot.Problems)
            {
                AnsiConsole.MarkupLineInterpolated($"[red]slot {slot.Slot}: {problem}[/]");
            }
        }
        if (report.Pool is not null)
        {
            PrintPool(report.Pool, problems: -1);
        }
        return 0;
    }

    private static int RunPool(string path, string sysfsRoot, bool asJson)
    {
        var problems = new List<CheckProblem>();
        BadRangeReport bad;
        using (PmemFile file = PmemFile.Open(path, writable: false, shared: true))
        {
            bad = file.GetBadRanges(sysfsRoot);
        }
        if (bad.Ranges.Count > 0)
        {
            // A load from a bad range raises SIGBUS: show where they are instead of reading the pool.
            var unread = new PoolInfoReport(path, "pool", new FileInfo(path).Length, null, 0, BadRangeListing.From(bad));
            if (asJson)
            {
                JsonOutput.Write(unread, ToolJsonContext.Default.PoolInfoReport);
            }
            else
            {
                AnsiConsole.MarkupLineInterpolated($"[bold]{path}[/] (pool file, {Sizes.Format(unread.Size)}): [red]not read: bad ranges, see dpmem check[/]");
                var grid = new Grid().AddColumn().AddColumn();
                AddBadRanges(grid, unread.BadRanges);
                AnsiConsole.Write(grid);
            }
            return 0;
        }
        using DaxMapping view = CheckCommand.OpenPoolFile(path, writable: false);
        PoolReport pool = PoolChecker.Check(view, 0, null, null, problems, [], out _);
        var report = new PoolInfoReport(path, "pool", view.Length, pool, problems.Count, BadRangeListing.From(bad));
        if (asJson)
        {
            JsonOutput.Write(report, ToolJsonContext.Default.PoolInfoReport);
            return 0;
        }
        AnsiConsole.MarkupLineInterpolated($"[bold]{path}[/] (pool file, {Sizes.Format(report.Size)})");
        PrintPool(pool, problems.Count);
        var badGrid = new Grid().AddColumn().AddColumn();
        AddBadRanges(badGrid, report.BadRanges);
        AnsiConsole.Write(badGrid);
        return 0;
    }

    private static void AddBadRanges(Grid grid, BadRangeListing? bad)
    {
        if (bad is null)
        {
            return;
        }
        string summary = bad.Coverage switch
        {
            "no_list" => "none listed (no bad-block list: not on persistent memory)",
            "complete" when bad.Ranges.Length == 0 => "none",
            "complete" => $"[red]{bad.Ranges.Length}[/]",
            _ => $"[yellow]unknown[/]{(bad.Ranges.Length > 0 ? $", at least [red]{bad.Ranges.Length}[/]" : "")}",
        };
        grid.AddRow("bad ranges", summary);
        foreach (long[] range in bad.Ranges)
        {
            grid.AddRow("", Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"[0x{range[0]:x}, 0x{range[0] + range[1]:x}) ({range[1]} bytes)")));
        }
        grid.AddRow("", Markup.Escape(bad.Detail));
    }

    private static void PrintPool(PoolReport pool, int problems)
    {
        string F(long value) => value.ToString(CultureInfo.InvariantCulture);
        var grid = new Grid().AddColumn().AddColumn();
        grid.AddRow("pool at", F(pool.Offset));
        grid.AddRow("primary header", Markup.Escape(pool.Primary));
        grid.AddRow("backup header", Markup.Escape(pool.Backup));
        if (pool.HeaderUsed is not null)
        {
            grid.AddRow("fields from", pool.HeaderUsed + " header");
            grid.AddRow("signature, version", "DPMPOOL " + Markup.Escape(pool.Version ?? "?"));
            grid.AddRow("features", Markup.Escape(pool.Features ?? "?"));
            grid.AddRow("durability", Markup.Escape(pool.Durability ?? "?"));
            grid.AddRow("uuid", Markup.Escape(pool.Uuid ?? "?"));
            grid.AddRow("layout", Markup.Escape(pool.Layout ?? "(invalid)"));
            grid.AddRow("created", Markup.Escape(pool.CreationTime ?? "?"));
            grid.AddRow("size", $"{Sizes.Format(pool.PoolSize)} ({F(pool.PoolSize)} bytes)");
            grid.AddRow("page size", Sizes.Format(pool.PageSize));
            grid.AddRow("architecture", Markup.Escape(pool.Architecture ?? "?"));
            grid.AddRow("reserved area", $"{F(pool.ReservedOffset)}, {F(pool.ReservedLength)} bytes");
            grid.AddRow("data offset", F(pool.DataOffset));
            grid.AddRow("root offset", $"{F(pool.RootOffset)}: {Markup.Escape(pool.Root)}");
            grid.AddRow("state", Markup.Escape(pool.State ?? "?"));
            grid.AddRow("dirty-shutdown count", pool.RecordedDirtyShutdownCount is ulong d ? d.ToString(CultureInfo.InvariantCulture) : "not recorded (no NVDIMM count in sysfs at the last open)");
            grid.AddRow("generation", pool.Generation.ToString(CultureInfo.InvariantCulture));
            foreach (StructureReport structure in pool.Structures)
            {
                grid.AddRow("structure", Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                    $"\"{structure.Name}\": {structure.Kind} at {structure.Offset}, {Sizes.Format(structure.Length)}{(structure.Header is { } h ? "; " + h : "")}")));
            }
        }
        foreach (StructureReport structure in pool.Structures.Where(s => s.Volume is not null))
        {
            grid.AddRow(Markup.Escape($"volume \"{structure.Name}\""), Markup.Escape(PoolChecker.VolumeSummary(structure.Volume!, Sizes.Format)));
        }
        if (pool.Log is LogReport log)
        {
            grid.AddRow("log", $"at {F(log.Offset)}, format {log.FormatVersion}, capacity {Sizes.Format(log.Capacity)}, head {F(log.Head)}, tail {F(log.Tail)}, {F(log.Records)} record(s), {Sizes.Format(log.UsedBytes)} used");
            if (log.FirstBadLsn is long bad)
            {
                grid.AddRow("log damage", Markup.Escape($"LSN {F(bad)}: {log.FirstBadProblem}"));
            }
        }
        if (pool.Heap is HeapReport heap)
        {
            grid.AddRow("heap", $"at {F(heap.Offset)}, {Sizes.Format(heap.RegionLength)}, {heap.LaneCount} lanes of {Sizes.Format(heap.LaneLogSize)}, root {Sizes.Format(heap.RootSize)}");
            grid.AddRow("objects", $"{heap.AllocatedObjects} of {heap.ObjectCount} allocated, {Sizes.Format(heap.ObjectSize)} each");
            grid.AddRow("lanes to roll back", heap.LanesToRollBack.ToString(CultureInfo.InvariantCulture));
        }
        if (problems > 0)
        {
            grid.AddRow("problems", $"[red]{problems} (run dpmem check)[/]");
        }
        AnsiConsole.Write(grid);
        foreach (StructureReport structure in pool.Structures.Where(s => s.Volume is { Segments.Count: > 0 }))
        {
            // One row per (device, segment): what a user looks for when a volume fills up.
            var table = new Table().Title(Markup.Escape($"volume \"{structure.Name}\" segments")).AddColumns("device", "segment", "slot", "chunks", "bytes", "allocated to");
            foreach (VolumeSegmentReport segment in structure.Volume!.Segments)
            {
                table.AddRow(Markup.Escape(segment.Device), F(segment.Segment), F(segment.Slot), F(segment.Chunks), Sizes.Format(segment.Bytes), Sizes.Format(segment.AllocatedLength));
            }
            AnsiConsole.Write(table);
        }
    }

    internal static InfoReport Describe(DaxDevice device)
    {
        // The granularity is what a mapping really gets: map the first page of the device and ask it.
        string granularity;
        using (DaxMapping probe = device.MapRaw(new DaxMappingOptions { Length = (long)device.Align, ReadOnly = true }))
        {
            granularity = probe.Granularity.ToString();
        }
        BadRangeReport bad = device.GetBadRanges();
        if (bad.Ranges.Count > 0)
        {
            // A load from a bad range raises SIGBUS: the label table and a pool are not read over them.
            return new InfoReport(device.Name, device.DevicePath, device.Size, (long)device.Align, device.IsEmulated, device.Backing.ToString(),
                DaxListing.PersistenceName(device.Persistence), (long)device.FaultGranularity, granularity, device.Region?.Name,
                DaxRangeAllocator.LabelAreaLengthFor(device.Align), "not read (bad ranges: see dpmem check)", [], null, BadRangeListing.From(bad));
        }
        bool poolAtStart = PoolChecker.DeviceStartsWithPool(device);
        LabelSlotReport[] slots = poolAtStart ? [] : LabelInspector.Read(device);
        string table = poolAtStart ? "none (a pool starts at offset 0)"
            : slots.Length == 0 ? "none (no room for one)"
            : slots.All(s => !s.Published) ? "none (not formatted)"
            : slots.Any(s => s.Published && s.Problems.Count > 0) ? "damaged (run dpmem check)"
            : string.Create(CultureInfo.InvariantCulture, $"slot {slots.Where(s => s.Published).MaxBy(s => s.Sequence)!.Slot}, {slots.Where(s => s.Published).MaxBy(s => s.Sequence)!.Count} ranges");
        PoolReport? pool = null;
        if (poolAtStart)
        {
            using DaxMapping view = device.MapRaw(new DaxMappingOptions { ReadOnly = true });
            if (PoolChecker.LooksLikePool(view))
            {
                pool = PoolChecker.Check(view, 0, null, null, [], [], out _);
            }
        }
        return new InfoReport(device.Name, device.DevicePath, device.Size, (long)device.Align, device.IsEmulated, device.Backing.ToString(),
            DaxListing.PersistenceName(device.Persistence), (long)device.FaultGranularity, granularity, device.Region?.Name,
            DaxRangeAllocator.LabelAreaLengthFor(device.Align), table, slots, pool, BadRangeListing.From(bad));
    }
}
