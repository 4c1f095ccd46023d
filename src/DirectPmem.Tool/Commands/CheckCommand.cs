using System.CommandLine;
using System.Globalization;
using DirectPmem.Driver;
using DirectPmem.Mapping;
using DirectPmem.Tool.Cli;
using Spectre.Console;

namespace DirectPmem.Tool.Commands;

/// <summary>One problem <c>dpmem check</c> found: where (<c>descriptor</c>, <c>device</c>, <c>label slot N</c>, <c>label table</c>), what, and whether a repair is known.</summary>
internal sealed record CheckProblem(string Area, string Message, string? Repair);

/// <summary>What <c>dpmem check --json</c> prints.</summary>
internal sealed record CheckReport(string Path, string Kind, IReadOnlyList<CheckProblem> Problems, IReadOnlyList<string> Notes, IReadOnlyList<string> Repaired, bool Clean);

/// <summary>
/// <c>dpmem check PATH [--repair [--yes]]</c>: validates an emulated device's descriptor and a
/// device's label table, reporting every problem, and applies the repairs the library's formats
/// allow after confirmation. Exit code 0: clean (or everything repaired); 2: problems remain; 1: the
/// check itself failed. Pools and logs (DirectPmem.Storage) are checked here once that package lands.
/// </summary>
internal static class CheckCommand
{
    /// <summary>Exit code when problems remain.</summary>
    internal const int ProblemsFound = 2;

    internal static Command Create()
    {
        var path = new Argument<string>("path") { Description = "A device-DAX character device or an emulated device file." };
        var repair = new Option<bool>("--repair") { Description = "Apply the repairs that are known, after confirmation." };
        var yes = new Option<bool>("--yes", "-y") { Description = "With --repair: do not ask for confirmation." };
        var json = new Option<bool>("--json", "-j") { Description = "Print JSON." };
        Option<string> sysfs = DeviceOpener.SysfsOption();
        var command = new Command("check", "Validate an emulated device descriptor and a label table; report every problem; --repair fixes what can be fixed.") { path, repair, yes, json, sysfs };
        command.Validators.Add(result =>
        {
            if (result.GetValue(yes) && !result.GetValue(repair))
            {
                result.AddError("--yes is only meaningful with --repair.");
            }
        });
        CommandRunner.SetAction(command, parse => Run(parse.GetValue(path)!, parse.GetValue(sysfs)!, parse.GetValue(repair), parse.GetValue(yes), parse.GetValue(json)));
        return command;
    }

    private static int Run(string path, string sysfsRoot, bool repair, bool yes, bool asJson)
    {
        var problems = new List<CheckProblem>();
        var notes = new List<string>();
        var repaired = new List<string>();
        DaxDevice? device = OpenForCheck(path, sysfsRoot, repair, problems, notes, out string kind);
        try
        {
            if (device is not null)
            {
                CheckLabels(device, repair, yes, asJson, problems, notes, repaired);
            }
        }
        finally
        {
            device?.Dispose();
        }
        bool clean = problems.Count == 0;
        var report = new CheckReport(path, kind, problems, notes, repaired, clean);
        if (asJson)
        {
            JsonOutput.Write(report, ToolJsonContext.Default.CheckReport);
        }
        else
        {
            Print(report);
        }
        return clean ? 0 : ProblemsFound;
    }

    private static DaxDevice? OpenForCheck(string path, string sysfsRoot, bool repair, List<CheckProblem> problems, List<string> notes, out string kind)
    {
        if (Directory.Exists(path) || !File.Exists(path))
        {
            throw new ToolException(Directory.Exists(path) ? $"'{path}' is a directory." : $"'{path}' does not exist (ENOENT).");
        }
        DaxDevice? device;
        try
        {
            if (DeviceOpener.IsCharDevice(path, sysfsRoot, out device))
            {
                kind = "device-dax";
                return device;
            }
        }
        catch (DaxConfigurationException e)
        {
            kind = "device-dax";
            problems.Add(new CheckProblem("device", e.Message, null));
            return null;
        }
        kind = "emulated";
        DescriptorReport descriptor = DescriptorInspector.Read(path);
        foreach (string problem in descriptor.Problems)
        {
            problems.Add(new CheckProblem("descriptor", problem, null));
        }
        try
        {
            // The library's own verdict on the descriptor; writable so that it can also judge the labels.
            return DaxDevice.OpenEmulated(path, writable: true);
        }
        catch (PmemInUseException) when (!repair)
        {
            notes.Add("the device is open for writing in another process: checked read-only");
            return OpenReadOnly(path, problems);
        }
        catch (UnauthorizedAccessException) when (!repair)
        {
            notes.Add("no write permission: checked read-only");
            return OpenReadOnly(path, problems);
        }
        catch (PmemException e) when (e is not PmemInUseException)
        {
            if (descriptor.Problems.Count == 0)
            {
                problems.Add(new CheckProblem("descriptor", "the library refuses it: " + e.Message, null));
            }
            notes.Add("the device cannot be opened: its label table was not checked");
            return null;
        }
    }

    private static DaxDevice? OpenReadOnly(string path, List<CheckProblem> problems)
    {
        try
        {
            return DaxDevice.OpenEmulated(path, writable: false);
        }
        catch (PmemException e)
        {
            problems.Add(new CheckProblem("descriptor", "the library refuses it: " + e.Message, null));
            return null;
        }
    }

    private static void CheckLabels(DaxDevice device, bool repair, bool yes, bool quiet, List<CheckProblem> problems, List<string> notes, List<string> repaired)
    {
        LabelSlotReport[] slots = LabelInspector.Read(device);
        if (slots.Length == 0 || slots.All(s => !s.Published))
        {
            notes.Add("no label table (the device was never formatted with DaxRangeAllocator.Format)");
            return;
        }
        LabelSlotReport? good = slots.Where(s => s.Published && s.Problems.Count == 0).MaxBy(s => s.Sequence);
        var unpublish = new List<int>();
        foreach (LabelSlotReport slot in slots.Where(s => s.Published && s.Problems.Count > 0))
        {
            string? fix = good is not null
                ? string.Create(CultureInfo.InvariantCulture, $"unpublish slot {slot.Slot}: the table falls back to slot {good.Slot} (sequence {good.Sequence}, {good.Count} ranges)")
                : null;
            if (fix is not null)
            {
                unpublish.Add(slot.Slot);
            }
            foreach (string problem in slot.Problems)
            {
                problems.Add(new CheckProblem($"label slot {slot.Slot}", problem, fix));
            }
        }
        LibraryVerdict(device, problems, notes);

        if (!repair || unpublish.Count == 0)
        {
            if (repair)
            {
                notes.Add(problems.Count == 0 ? "nothing to repair" : "no known repair for these problems: nothing was changed");
            }
            return;
        }
        if (!yes && !Confirm($"Unpublish label slot(s) {string.Join(", ", unpublish)} so that the table falls back to slot {good!.Slot}?", quiet))
        {
            notes.Add("repair declined: nothing was changed");
            return;
        }
        using (DaxMapping labels = device.MapRaw(new DaxMappingOptions { Length = (long)device.Align }))
        {
            foreach (int slot in unpublish)
            {
                // The publish word of a slot: 0 means "not published", the state an interrupted update leaves.
                labels.Publish(slot * LabelInspector.SlotSize, 0);
                repaired.Add(string.Create(CultureInfo.InvariantCulture, $"label slot {slot} unpublished"));
            }
        }
        problems.RemoveAll(p => p.Repair is not null);
        problems.RemoveAll(p => p.Area == "label table");
        LibraryVerdict(device, problems, notes);
    }

    // The library is the judge of a table: every rule it enforces on open, including those the inspector does not re-check.
    private static void LibraryVerdict(DaxDevice device, List<CheckProblem> problems, List<string> notes)
    {
        try
        {
            using DaxRangeAllocator table = DaxRangeAllocator.Open(device);
            notes.Add(string.Create(CultureInfo.InvariantCulture, $"label table: slot {table.ActiveSlot}, sequence {table.Sequence}, {table.Ranges.Count} ranges"));
        }
        catch (DaxLabelException e)
        {
            problems.Add(new CheckProblem("label table", string.Create(CultureInfo.InvariantCulture, $"DaxRangeAllocator.Open refuses it ({e.Rule}, slot {e.Slot}): {e.Message}"), null));
        }
        catch (PmemException e) when (device.IsEmulated)
        {
            notes.Add("the label table could not be opened for the library's check: " + e.Message);
        }
    }

    private static bool Confirm(string question, bool quiet)
    {
        if (Console.IsInputRedirected && !quiet)
        {
            Console.Error.WriteLine(question + " [y/N]");
        }
        else if (!quiet)
        {
            Console.Write(question + " [y/N] ");
        }
        string? answer = Console.ReadLine();
        return answer is not null && answer.Trim().ToUpperInvariant() is "Y" or "YES";
    }

    // Plain lines (no markup, no wrapping): check output is read by people and by scripts alike.
    private static void Print(CheckReport report)
    {
        Console.WriteLine($"{report.Path} ({report.Kind})");
        foreach (CheckProblem problem in report.Problems)
        {
            Console.WriteLine($"  problem {problem.Area}: {problem.Message}");
            if (problem.Repair is not null)
            {
                Console.WriteLine($"    repair: {problem.Repair} (dpmem check --repair)");
            }
        }
        foreach (string fixedNow in report.Repaired)
        {
            Console.WriteLine($"  repaired {fixedNow}");
        }
        foreach (string note in report.Notes)
        {
            Console.WriteLine($"  note: {note}");
        }
        Console.WriteLine(report.Clean ? "  clean" : string.Create(CultureInfo.InvariantCulture, $"  {report.Problems.Count} problem(s)"));
    }
}
