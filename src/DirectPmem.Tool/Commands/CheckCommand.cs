using System.CommandLine;
using System.Globalization;
using DirectPmem.Driver;
using DirectPmem.Mapping;
using DirectPmem.Storage;
using DirectPmem.Tool.Cli;
using Spectre.Console;

namespace DirectPmem.Tool.Commands;

/// <summary>One problem <c>dpmem check</c> found: where (<c>descriptor</c>, <c>device</c>, <c>label slot N</c>, <c>label table</c>), what, and whether a repair is known.</summary>
internal sealed record CheckProblem(string Area, string Message, string? Repair);

/// <summary>What <c>dpmem check --json</c> prints.</summary>
internal sealed record CheckReport(string Path, string Kind, IReadOnlyList<CheckProblem> Problems, IReadOnlyList<string> Notes, IReadOnlyList<string> Repaired, bool Clean, PoolReport? Pool = null,
    BadRangeListing? BadRanges = null);

/// <summary>
/// <c>dpmem check PATH [--repair [--yes]]</c>: validates an emulated device's descriptor, a
/// device's label table, and a DirectPmem.Storage pool (a pool file, or a pool in a device at
/// <c>--offset</c>): both header copies field by field, then the log or transactional heap its root
/// points at (or that <c>--log</c>/<c>--heap</c> name). Every problem is reported; <c>--repair</c>
/// applies the repairs the library's formats allow after confirmation. Exit code 0: clean (or
/// everything repaired); 2: problems remain; 1: the check itself failed.
/// </summary>
internal static class CheckCommand
{
    /// <summary>Exit code when problems remain.</summary>
    internal const int ProblemsFound = 2;

    internal static Command Create()
    {
        var path = new Argument<string>("path") { Description = "A device-DAX character device, an emulated device file or a pool file." };
        var repair = new Option<bool>("--repair") { Description = "Apply the repairs that are known, after confirmation." };
        var yes = new Option<bool>("--yes", "-y") { Description = "With --repair: do not ask for confirmation." };
        var json = new Option<bool>("--json", "-j") { Description = "Print JSON." };
        var offset = new Option<string?>("--offset") { Description = "Where a pool starts in a device (a multiple of its align; default: look at 0 when the device has no label table)." };
        var log = new Option<string?>("--log") { Description = "Check a log at this pool offset (default: the one the pool's root points at)." };
        var heap = new Option<string?>("--heap") { Description = "Check a transactional heap at this pool offset (default: the one the pool's root points at)." };
        Option<string> sysfs = DeviceOpener.SysfsOption();
        var command = new Command("check", "Validate an emulated device descriptor, a label table, a pool's headers, log and heap; report every problem; --repair fixes what can be fixed.")
        {
            path, repair, yes, json, offset, log, heap, sysfs,
        };
        command.Validators.Add(result =>
        {
            if (result.GetValue(yes) && !result.GetValue(repair))
            {
                result.AddError("--yes is only meaningful with --repair.");
            }
        });
        CommandRunner.SetAction(command, parse =>
        {
            var where = new PoolTarget(Offset(parse.GetValue(offset), "--offset"), Offset(parse.GetValue(log), "--log"), Offset(parse.GetValue(heap), "--heap"), parse.GetValue(sysfs)!);
            return Run(parse.GetValue(path)!, parse.GetValue(sysfs)!, parse.GetValue(repair), parse.GetValue(yes), parse.GetValue(json), where);
        });
        return command;
    }

    /// <summary>Where to look for a pool in a device, and which log or heap to check in it.</summary>
    private sealed record PoolTarget(long? Offset, long? Log, long? Heap, string Sysfs);

    private static long? Offset(string? text, string option)
    {
        if (text is null)
        {
            return null;
        }
        return Sizes.TryParse(text, out long value) ? value : throw new ToolException($"{option} '{text}' is not a byte offset (a number, optionally with K, M or G).");
    }

    private static int Run(string path, string sysfsRoot, bool repair, bool yes, bool asJson, PoolTarget where)
    {
        var problems = new List<CheckProblem>();
        var notes = new List<string>();
        var repaired = new List<string>();
        PoolReport? pool = null;
        BadRangeListing? bad = null;
        string kind;
        if (!Directory.Exists(path) && File.Exists(path) && !IsCharacterDevice(path, sysfsRoot) && IsPoolFile(path, where.Log is not null || where.Heap is not null))
        {
            kind = "pool";
            var media = new MediaCheck(
                () => { using PmemFile file = PmemFile.Open(path, writable: false, shared: true); return file.GetBadRanges(sysfsRoot); },
                () => { using PmemFile file = PmemFile.Open(path, writable: true); return file.ClearBadRanges(sysfsRoot); },
                null);
            if (CheckBadRanges($"'{path}'", media, repair, yes, asJson, problems, notes, repaired, out bad))
            {
                pool = CheckPool(writable => OpenPoolFile(path, writable), required: true, where with { Offset = 0 }, repair, yes, asJson, problems, notes, repaired);
            }
        }
        else
        {
            DaxDevice? device = OpenForCheck(path, sysfsRoot, repair, problems, notes, out kind);
            try
            {
                if (device is not null && !CheckBadRanges(device.DevicePath, MediaCheckOf(device), repair, yes, asJson, problems, notes, repaired, out bad))
                {
                    // Nothing more is read from a device with bad ranges left (see CheckBadRanges).
                }
                else if (device is not null)
                {
                    bool poolAtStart = where.Offset is null && PoolChecker.DeviceStartsWithPool(device);
                    if (!poolAtStart)
                    {
                        CheckLabels(device, repair, yes, asJson, problems, notes, repaired);
                    }
                    bool hasLabels = !poolAtStart && LabelInspector.Read(device).Any(s => s.Published);
                    if (where.Offset is not null || !hasLabels)
                    {
                        long start = where.Offset ?? 0;
                        DaxDevice current = device;
                        pool = CheckPool(writable => current.MapRaw(new DaxMappingOptions { Offset = start, ReadOnly = !writable }), required: where.Offset is not null || where.Log is not null || where.Heap is not null,
                            where with { Offset = start }, repair, yes, asJson, problems, notes, repaired);
                    }
                    else
                    {
                        notes.Add("the device has a label table: name a pool in one of its ranges with --offset");
                    }
                }
            }
            finally
            {
                device?.Dispose();
            }
        }
        bool clean = problems.Count == 0;
        var report = new CheckReport(path, kind, problems, notes, repaired, clean, pool, bad);
        if (asJson)
        {
            JsonOutput.Write(report, ToolJsonContext.Default.CheckReport);
        }
        else
        {
            Print(report);
        }
        if (!clean)
        {
            // The exit code is not the only word: one line on stderr, whatever went to stdout.
            Console.Error.WriteLine($"dpmem: {problems.Count} problem{(problems.Count == 1 ? "" : "s")} remain{(problems.Count == 1 ? "s" : "")} in {path} (exit code {ProblemsFound}){(repair ? "" : "; --repair applies the repairs the format allows")}.");
        }
        return clean ? 0 : ProblemsFound;
    }

    /// <summary>How a source's bad ranges are listed and cleared; <c>OperatorSteps</c> for device-DAX, which no program can clear.</summary>
    private sealed record MediaCheck(Func<BadRangeReport> List, Func<IReadOnlyList<PoisonClearResult>>? Clear, Func<string>? OperatorSteps);

    private static MediaCheck MediaCheckOf(DaxDevice device)
    {
        if (device.IsEmulated)
        {
            return new MediaCheck(device.GetBadRanges, device.ClearBadRanges, null);
        }
        // For a real device ClearBadRanges changes nothing: it throws with what is bad and the operator's steps.
        return new MediaCheck(device.GetBadRanges, null, () =>
        {
            try
            {
                device.ClearBadRanges();
                return "";
            }
            catch (BadBlocksNotClearableException e)
            {
                return e.OperatorSteps;
            }
        });
    }

    /// <summary>
    /// Lists the source's bad ranges as problems; with --repair clears those a program can clear
    /// (files: the recovery write) and says what the operator does for the rest (device-DAX).
    /// Returns whether the source's structures may be read: not while a listed bad range remains,
    /// because a load from one raises SIGBUS and kills the check (an unknown list is noted and read past).
    /// </summary>
    private static bool CheckBadRanges(string what, MediaCheck media, bool repair, bool yes, bool quiet,
        List<CheckProblem> problems, List<string> notes, List<string> repaired, out BadRangeListing listing)
    {
        const string NotRead = "the label table and pool were not read: a load from a bad range raises SIGBUS (BUS_MCEERR_AR), which would end the check";
        BadRangeReport report = media.List();
        listing = BadRangeListing.From(report);
        if (report.IsKnownClean)
        {
            return true;
        }
        if (report.Ranges.Count == 0)
        {
            // Nothing known is bad: checking blind is what a check without the list would do, and it says so.
            notes.Add($"the bad ranges of {what} are not known ({report.Detail}): the structures are read anyway, and a poisoned line among them would end the check with SIGBUS");
            return true;
        }
        string? steps = media.OperatorSteps?.Invoke();
        if (!string.IsNullOrEmpty(steps))
        {
            notes.Add("the operator's steps for device-DAX bad ranges: " + steps);
        }
        string? fix = media.Clear is null ? null
            : "rewrite the range with zeros through the kernel's recovery write, which clears the poison (its bytes are already lost); the structures over it are then checked and repaired";
        AddBadProblems(report, "is listed bad", steps, fix, problems);
        if (!repair || media.Clear is null)
        {
            if (repair)
            {
                notes.Add("device-DAX bad ranges cannot be cleared by a program: nothing was changed");
            }
            notes.Add(NotRead);
            return false;
        }
        if (!yes && !Confirm($"Rewrite {report.Ranges.Count} bad range(s) of {what} with zeros to clear the poison (the data there is already lost)?", quiet))
        {
            notes.Add("repair declined: nothing was changed");
            notes.Add(NotRead);
            return false;
        }
        foreach (PoisonClearResult result in media.Clear())
        {
            repaired.Add(string.Create(CultureInfo.InvariantCulture, $"bad blocks: {result.Range} rewritten with zeros ({(result.Method == PoisonClearMethod.RecoveryWrite ? "recovery write" : "hole punched and reallocated")})"));
        }
        problems.RemoveAll(p => p.Area == "bad blocks");
        BadRangeReport after = media.List();
        listing = BadRangeListing.From(after);
        if (after.IsKnownClean)
        {
            return true;
        }
        AddBadProblems(after, "is still listed bad after the rewrite (the platform did not clear the media)", steps, null, problems);
        notes.Add(NotRead);
        return false;
    }

    private static void AddBadProblems(BadRangeReport report, string state, string? steps, string? fix, List<CheckProblem> problems)
    {
        foreach (Geometry.PmemRange range in report.Ranges)
        {
            string message = $"{range} {state} ({report.Detail})" + (string.IsNullOrEmpty(steps) ? "" : "; device-DAX has no clear path a program can reach (see the operator's steps)");
            problems.Add(new CheckProblem("bad blocks", message, fix));
        }
        if (report.Coverage == BadRangeCoverage.Unknown)
        {
            problems.Add(new CheckProblem("bad blocks", "the list may be incomplete: " + report.Detail, null));
        }
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

    // .NET has no stat(2) file type: ask the device opener, which recognises character devices by type and sysfs.
    internal static bool IsCharacterDevice(string path, string sysfsRoot)
    {
        try
        {
            bool isDevice = DeviceOpener.IsCharDevice(path, sysfsRoot, out DaxDevice? device);
            device?.Dispose();
            return isDevice;
        }
        catch (DaxConfigurationException)
        {
            return true; // a character device that is not device-DAX: OpenForCheck reports it
        }
    }

    // A file without an emulated device's descriptor whose first or second 4 KiB block starts with the pool signature (or that --log/--heap name a structure in).
    internal static bool IsPoolFile(string path, bool named)
    {
        if (DescriptorInspector.Read(path).DescriptorOffset >= 0)
        {
            return false;
        }
        if (named)
        {
            return true;
        }
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        Span<byte> block = stackalloc byte[8];
        foreach (long at in new long[] { 0, PoolChecker.HeaderSize })
        {
            if (stream.Length >= at + 8)
            {
                stream.Position = at;
                stream.ReadExactly(block);
                if (block.SequenceEqual("DPMPOOL\0"u8))
                {
                    return true;
                }
            }
        }
        return false;
    }

    internal static DaxMapping OpenPoolFile(string path, bool writable)
    {
        using PmemFile file = PmemFile.Open(path, writable);
        if (file.Size % 4096 != 0)
        {
            throw new ToolException($"'{path}' has {file.Size} bytes, not a whole number of 4 KiB pages: it is not a pool (pools are created with a size that is a multiple of the page size).");
        }
        return file.Map(new DaxMappingOptions { ReadOnly = !writable });
    }

    // The pool in `open(false)`: headers, then the log or heap; --repair writes the intact header copy over the other through `open(true)`, then checks again.
    private static PoolReport? CheckPool(Func<bool, DaxMapping> open, bool required, PoolTarget where, bool repair, bool yes, bool quiet,
        List<CheckProblem> problems, List<string> notes, List<string> repaired)
    {
        var found = new List<CheckProblem>();
        var poolNotes = new List<string>();
        PoolInspection fix;
        PoolReport? report;
        using (DaxMapping view = open(false))
        {
            if (!required && !PoolChecker.LooksLikePool(view))
            {
                notes.Add(string.Create(CultureInfo.InvariantCulture, $"no pool at offset {where.Offset} (no pool signature in either header block)"));
                return null;
            }
            report = Inspect(view, where, found, poolNotes, out fix);
        }
        if (repair)
        {
            bool header = fix.HeaderRepair != PoolHeaderRepair.None;
            bool directory = fix.DirectoryRepair != PoolHeaderRepair.None;
            if (!header && !directory)
            {
                poolNotes.Add(found.Count == 0 ? "nothing to repair in the pool"
                    : found.All(p => p.Area == "volume" && p.Repair is not null) ? "nothing to repair in the pool's headers and directory"
                    : "no known repair for the pool's problems: nothing was changed");
            }
            else if (!yes && !Confirm(!header ? "Restore the pool's damaged directory copy from the intact one?"
                : fix.HeaderRepair == PoolHeaderRepair.PrimaryRestoredFromBackup ? "Restore the pool's primary header from its intact backup?" : "Restore the pool's backup header from its primary?", quiet))
            {
                poolNotes.Add("repair declined: nothing was changed");
            }
            else
            {
                using (DaxMapping writable = open(true))
                {
                    PoolInspector.RepairPool(writable);
                }
                if (header)
                {
                    repaired.Add(fix.HeaderRepair == PoolHeaderRepair.PrimaryRestoredFromBackup ? "pool: primary header (offset 0) restored from the backup" : "pool: backup header (offset 4096) restored from the primary");
                }
                if (directory)
                {
                    repaired.Add(fix.DirectoryRepair == PoolHeaderRepair.PrimaryRestoredFromBackup ? "pool: primary directory (offset 8192) restored from the backup" : "pool: backup directory (offset 12288) restored from the primary");
                }
                found.Clear();
                poolNotes.Clear();
                using DaxMapping view = open(false);
                report = Inspect(view, where, found, poolNotes, out _);
            }
        }
        if (repair && found.Any(p => p.Area == "volume" && p.Repair is not null))
        {
            if (!yes && !Confirm("Make the repairs a writable open of the Garnet volume makes (restore a damaged header copy from the intact one; publish 0 to owner words that name no live segment, freeing their chunks)?", quiet))
            {
                poolNotes.Add("volume repair declined: nothing was changed");
            }
            else
            {
                using (DaxMapping writable = open(true))
                {
                    PoolInspection inspection = PoolInspector.InspectPool(writable);
                    foreach (PoolDirectoryEntry entry in inspection.Structures.Where(e => e.Kind == PoolStructureKind.GarnetVolume))
                    {
                        VolumeInspection before = PoolInspector.InspectVolume(writable, inspection, entry);
                        VolumeInspection after = PoolInspector.RepairVolume(writable, inspection, entry);
                        if (before.Header.Problems.Any(p => p.Severity == PoolProblemSeverity.Repairable) && !after.Header.Problems.Any(p => p.Severity == PoolProblemSeverity.Repairable))
                        {
                            repaired.Add($"volume \"{entry.Name}\": damaged structure header copy restored from the intact one");
                        }
                        if (before.ReclaimableChunks > after.ReclaimableChunks)
                        {
                            repaired.Add(string.Create(CultureInfo.InvariantCulture, $"volume \"{entry.Name}\": {before.ReclaimableChunks - after.ReclaimableChunks} chunk(s) whose owner word named no live segment freed"));
                        }
                    }
                }
                found.Clear();
                poolNotes.Clear();
                using DaxMapping view = open(false);
                report = Inspect(view, where, found, poolNotes, out _);
            }
        }
        problems.AddRange(found);
        notes.AddRange(poolNotes);
        return report;
    }

    private static PoolReport Inspect(DaxMapping view, PoolTarget where, List<CheckProblem> problems, List<string> notes, out PoolInspection fix)
    {
        PoolReport report = PoolChecker.Check(view, where.Offset ?? 0, where.Log, where.Heap, problems, notes, out fix);
        if (report.Layout is null || problems.Any(p => p.Area == "pool" && p.Repair is null))
        {
            return report;
        }
        // The library is the judge of a header: open it read-only (nothing is written) and take its word and its dirty-shutdown reading.
        // The check lists bad ranges itself, so they do not stop this open; a header copy in one is not loaded.
        try
        {
            using PmemPool pool = PmemPool.Open(view, report.Layout, new PoolOpenOptions { ReadOnly = true, SysfsRoot = where.Sysfs, BadBlockPolicy = PoolBadBlockPolicy.OpenReadOnly });
            if (pool.DirtyShutdownDetected)
            {
                notes.Add(string.Create(CultureInfo.InvariantCulture, $"dirty shutdown detected: the NVDIMMs' count is {pool.DirtyShutdownCount}, the pool recorded {report.RecordedDirtyShutdownCount}; stores in flight at a power failure may be lost: the application runs its recovery"));
            }
            return report with { CurrentDirtyShutdownCount = pool.DirtyShutdownCount, DirtyShutdownDetected = pool.DirtyShutdownCount is null ? null : pool.DirtyShutdownDetected };
        }
        catch (PoolFormatException e)
        {
            problems.Add(new CheckProblem("pool", $"PmemPool.Open refuses it ({e.Field}): {e.Message}", null));
            return report;
        }
        catch (PoolMediaErrorException e)
        {
            problems.Add(new CheckProblem("pool", $"PmemPool.Open refuses it (media error): {e.Message}", null));
            return report;
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
        using (DaxMapping labels = device.MapRaw(new DaxMappingOptions { Length = DaxRangeAllocator.LabelAreaLengthFor(device.Align) }))
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
        if (report.BadRanges is BadRangeListing badRanges)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  bad ranges: {badRanges.Coverage}, {badRanges.Ranges.Length} listed ({badRanges.Detail})"));
        }
        if (report.Pool is PoolReport pool)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  pool at {pool.Offset}: primary header {pool.Primary}; backup header {pool.Backup}"));
            if (pool.HeaderUsed is not null)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  pool: version {pool.Version}, layout \"{pool.Layout}\", {pool.PoolSize} bytes, state {pool.State}, dirty-shutdown count {(pool.RecordedDirtyShutdownCount is ulong d ? d.ToString(CultureInfo.InvariantCulture) : "not recorded")}, root {pool.RootOffset}: {pool.Root}"));
            }
            foreach (StructureReport structure in pool.Structures)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  structure \"{structure.Name}\": {structure.Kind} at {structure.Offset}, {structure.Length} bytes{(structure.Header is { } h ? "; " + h : "")}"));
                if (structure.Volume is VolumeReport volume)
                {
                    Console.WriteLine($"  volume \"{structure.Name}\": {PoolChecker.VolumeSummary(volume, b => b.ToString(CultureInfo.InvariantCulture) + " bytes")}");
                }
            }
            if (pool.Log is LogReport log)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  log at {log.Offset}: format {log.FormatVersion}, capacity {log.Capacity}, head {log.Head}, tail {log.Tail}, {log.Records} record(s) verified{(log.FirstBadLsn is long bad ? $", first bad frame at LSN {bad}" : "")}"));
            }
            if (pool.Heap is HeapReport heap)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  heap at {heap.Offset}: {heap.LaneCount} lanes of {heap.LaneLogSize} bytes, {heap.AllocatedObjects}/{heap.ObjectCount} objects of {heap.ObjectSize} bytes allocated, {heap.LanesToRollBack} lane(s) to roll back"));
            }
        }
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
