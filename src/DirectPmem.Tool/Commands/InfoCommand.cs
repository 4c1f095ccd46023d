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
    IReadOnlyList<LabelSlotReport> LabelSlots);

/// <summary><c>dpmem info PATH</c>: geometry, the persistence granularity a mapping gets, and the label table.</summary>
internal static class InfoCommand
{
    internal static Command Create()
    {
        var path = new Argument<string>("path") { Description = "A device-DAX character device or an emulated device file." };
        var json = new Option<bool>("--json", "-j") { Description = "Print JSON." };
        Option<string> sysfs = DeviceOpener.SysfsOption();
        var command = new Command("info", "Show a device's geometry, backing, persistence granularity and label table.") { path, json, sysfs };
        CommandRunner.SetAction(command, parse => Run(parse.GetValue(path)!, parse.GetValue(sysfs)!, parse.GetValue(json)));
        return command;
    }

    private static int Run(string path, string sysfsRoot, bool asJson)
    {
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
        return 0;
    }

    internal static InfoReport Describe(DaxDevice device)
    {
        // The granularity is what a mapping really gets: map the first page of the device and ask it.
        string granularity;
        using (DaxMapping probe = device.MapRaw(new DaxMappingOptions { Length = (long)device.Align, ReadOnly = true }))
        {
            granularity = probe.Granularity.ToString();
        }
        LabelSlotReport[] slots = LabelInspector.Read(device);
        string table = slots.Length == 0 ? "none (no room for one)"
            : slots.All(s => !s.Published) ? "none (not formatted)"
            : slots.Any(s => s.Published && s.Problems.Count > 0) ? "damaged (run dpmem check)"
            : string.Create(CultureInfo.InvariantCulture, $"slot {slots.Where(s => s.Published).MaxBy(s => s.Sequence)!.Slot}, {slots.Where(s => s.Published).MaxBy(s => s.Sequence)!.Count} ranges");
        return new InfoReport(device.Name, device.DevicePath, device.Size, (long)device.Align, device.IsEmulated, device.Backing.ToString(),
            DaxListing.PersistenceName(device.Persistence), (long)device.FaultGranularity, granularity, device.Region?.Name,
            DaxRangeAllocator.LabelAreaLengthFor(device.Align), table, slots);
    }
}
