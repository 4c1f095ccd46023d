using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using System.Text;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Storage;
using DirectPmem.Storage.Transactions;
using DirectPmem.Tool.Commands;

namespace DirectPmem.Tool.Cli;

/// <summary>A pool as <c>dpmem check</c> and <c>dpmem info</c> read it (header fields from the copy the library would use).</summary>
internal sealed record PoolReport(
    long Offset,
    string Primary,
    string Backup,
    string? HeaderUsed,
    string? Version,
    string? Features,
    string? Uuid,
    string? Layout,
    string? CreationTime,
    long PoolSize,
    long PageSize,
    string? Architecture,
    long RootOffset,
    long ReservedOffset,
    long ReservedLength,
    long DataOffset,
    string? State,
    bool? Clean,
    ulong? RecordedDirtyShutdownCount,
    ulong? CurrentDirtyShutdownCount,
    bool? DirtyShutdownDetected,
    ulong Generation,
    string? Durability,
    IReadOnlyList<StructureReport> Structures,
    string Root,
    LogReport? Log,
    HeapReport? Heap,
    bool CreatedOnVolatileMemory = false);

/// <summary>A named structure in the pool's directory; <paramref name="Header"/> is the state of its structure header (a Garnet volume), null for kinds without one; <paramref name="Volume"/> is a Garnet volume's body.</summary>
internal sealed record StructureReport(string Name, string Kind, long Offset, long Length, string? Header = null, VolumeReport? Volume = null);

/// <summary>A Garnet volume's body as <see cref="PoolInspector.InspectVolume"/> read it: geometry, space and segments.</summary>
internal sealed record VolumeReport(long ChunkSize, long ChunkCount, long DataCapacity, int SlotCount, int FreeSlots, long UsedChunks, long UsedBytes, long FreeChunks, long FreeBytes,
    long ReclaimableChunks, int Devices, IReadOnlyList<VolumeSegmentReport> Segments);

/// <summary>One (device, segment) pair of a volume: its slot, the chunks it owns and the bytes they take, and where its last chunk ends.</summary>
internal sealed record VolumeSegmentReport(string Device, int Segment, int Slot, int Chunks, long Bytes, long AllocatedLength);

/// <summary>A log: header, head and tail, and the frames walked from head to tail.</summary>
internal sealed record LogReport(long Offset, string? FormatVersion, long Capacity, long Head, long Tail, long Records, long UsedBytes, long? FirstBadLsn, string? FirstBadProblem);

/// <summary>A transactional heap: geometry, allocation and what recovery would roll back.</summary>
internal sealed record HeapReport(long Offset, long RegionLength, int LaneCount, int LaneLogSize, int RootSize, int ObjectSize, int ObjectCount, int AllocatedObjects, int LanesToRollBack, IReadOnlyList<HeapLaneReport> Lanes);

/// <summary>One lane of a heap.</summary>
internal sealed record HeapLaneReport(int Lane, ulong? Generation, int PendingEntries, long PendingBytes, int CommitsToReplay, int EntriesToReplay);

/// <summary>
/// Reads a DirectPmem.Storage pool without trusting it, through the library's public inspection
/// (<see cref="PoolInspector.InspectPool"/>: the same parser and validation <see cref="PmemPool.Open"/> runs,
/// collecting every problem), then checks the log or transactional heap the root points at (or that the
/// caller names) and every named structure in the pool's directory.
/// </summary>
internal static class PoolChecker
{
    internal const int HeaderSize = 4096;

    /// <summary>Whether the mapping starts with a pool header (primary or backup signature).</summary>
    internal static bool LooksLikePool(DaxMapping map) => map.Length >= 2 * HeaderSize && PoolInspector.InspectPool(map).LooksLikePool;

    /// <summary>Whether a device's data starts with a pool (then its first blocks are no label table).</summary>
    internal static bool DeviceStartsWithPool(DirectPmem.Driver.DaxDevice device)
    {
        long length = DirectPmem.Driver.DaxRangeAllocator.LabelAreaLengthFor(device.Align);
        if (device.Size < length)
        {
            return false;
        }
        using DaxMapping head = device.MapRaw(new DaxMappingOptions { Length = length, ReadOnly = true });
        return LooksLikePool(head);
    }

    /// <summary>Checks the pool in <paramref name="map"/>; problems go to <paramref name="problems"/> (area "pool", "log", "heap").</summary>
    internal static PoolReport Check(DaxMapping map, long poolOffset, long? logOffset, long? heapOffset, List<CheckProblem> problems, List<string> notes, out PoolInspection inspection)
    {
        inspection = PoolInspector.InspectPool(map);
        PoolInspection pool = inspection;
        string? used = pool.HeaderUsed switch { PoolHeaderCopy.Primary => "primary", PoolHeaderCopy.Backup => "backup", _ => null };
        foreach (PoolProblem problem in pool.Problems)
        {
            switch (problem.Severity)
            {
                case PoolProblemSeverity.Error when problem.Field is PoolHeaderField.Checksum or PoolHeaderField.Size && used is null:
                    problems.Add(new CheckProblem("pool", problem.Message, null));
                    break;
                case PoolProblemSeverity.Error:
                    problems.Add(new CheckProblem("pool", $"{used} header, {FieldName(problem.Field)}: {problem.Message}", null));
                    break;
                case PoolProblemSeverity.Repairable:
                    problems.Add(new CheckProblem("pool", problem.Message, RepairText(problem.Field, pool)));
                    break;
                default:
                    notes.Add(problem.Message);
                    break;
            }
        }
        if (used is null)
        {
            if (pool.Problems.Count > 1)
            {
                notes.Add("neither header copy is intact: the library refuses the pool and there is no repair");
            }
            return Empty(poolOffset, pool.PrimaryState, pool.BackupState);
        }
        if (pool.CreatedOnVolatileMemory)
        {
            notes.Add(Invariant($"the pool was created on volatile memory ({pool.CreatedOnBacking}) with PoolCreateOptions.AllowVolatile: its contents do not survive a reboot or power loss"));
        }
        if (pool.WasCleanlyClosed == false)
        {
            notes.Add("the pool was not closed cleanly (state: in use), or is open now: the application runs its recovery on the next open");
        }
        string root = pool.RootKind switch
        {
            PoolRootKind.None => "none (root offset 0)",
            PoolRootKind.Log => "log",
            PoolRootKind.TransactionalHeap => "transactional heap",
            _ => "application data (neither a log nor a transactional heap)",
        };
        if (pool.RootKind == PoolRootKind.Log)
        {
            logOffset ??= pool.RootOffset;
        }
        if (pool.RootKind == PoolRootKind.TransactionalHeap)
        {
            heapOffset ??= pool.RootOffset;
        }
        bool dataValid = !pool.Problems.Any(p => p.Severity == PoolProblemSeverity.Error && p.Field is PoolHeaderField.ReservedArea or PoolHeaderField.DataOffset);
        long logDataOffset = dataValid ? pool.DataOffset : 2 * HeaderSize;
        LogReport? log = null;
        HeapReport? heap = null;
        if (logOffset is long lo)
        {
            log = LogChecker.Check(map, lo, logDataOffset, problems, notes);
        }
        if (heapOffset is long ho)
        {
            // PoolTransactions puts the heap in the whole data area, rounded down to 64 bytes.
            long? length = dataValid && ho == pool.DataOffset ? (map.Length - pool.DataOffset) & ~63L : null;
            heap = CheckHeap(map, ho, length, problems, notes);
        }
        // The named structures: each log and heap is walked as a root one is; a Garnet volume's header is judged
        // by the routine PmemVolume's open runs (PmemPool.OpenStructure).
        var structures = new List<StructureReport>(pool.Structures.Count);
        foreach (PoolDirectoryEntry entry in pool.Structures)
        {
            string? header = null;
            VolumeReport? body = null;
            if (entry.Kind == PoolStructureKind.Log && entry.Offset != logOffset)
            {
                LogChecker.Check(map, entry.Offset, logDataOffset, problems, notes);
            }
            else if (entry.Kind == PoolStructureKind.TransactionalHeap && entry.Offset != heapOffset)
            {
                CheckHeap(map, entry.Offset, entry.Length, problems, notes);
            }
            else if (entry.Kind == PoolStructureKind.GarnetVolume)
            {
                VolumeInspection volume = PoolInspector.InspectVolume(map, pool, entry);
                header = $"primary header {volume.Header.PrimaryState}; backup header {volume.Header.BackupState}";
                body = CheckVolume(entry, volume, problems, notes);
            }
            structures.Add(new StructureReport(entry.Name, entry.Kind.ToString(), entry.Offset, entry.Length, header, body));
        }
        return new PoolReport(poolOffset, pool.PrimaryState, pool.BackupState, used, pool.FormatVersion?.ToString(2), pool.Features.ToString(),
            pool.Uuid.ToString(), pool.Layout, pool.CreationTime.ToString("u", CultureInfo.InvariantCulture),
            pool.Size, pool.PageSize, Invariant($"endianness {pool.Endianness} ({(pool.Endianness == 1 ? "little" : pool.Endianness == 2 ? "big" : "?")}), pointer size {pool.PointerSize}, machine {pool.Machine}{(pool.Machine == 62 ? " (x86-64)" : pool.Machine == 183 ? " (AArch64)" : "")}"),
            pool.RootOffset, pool.ReservedOffset, pool.ReservedLength, pool.DataOffset,
            pool.WasCleanlyClosed switch { true => "clean", false => "in use (not closed cleanly, or open now)", _ => "invalid" }, pool.WasCleanlyClosed,
            pool.RecordedDirtyShutdownCount, null, null, pool.Generation,
            pool.Durability is { } d ? $"{d} on {pool.CreatedOnBacking}{(pool.CreatedOnVolatileMemory ? VolatileSuffix : "")}" : "not recorded (format 1.0)",
            structures,
            root, log, heap, pool.CreatedOnVolatileMemory);
    }

    /// <summary>
    /// A Garnet volume: its header's problems (the pool's judge) and its body's (the volume's judge, the one PmemVolume's
    /// open runs: an error there is the sentence the open throws), then the segments and the space.
    /// </summary>
    private static VolumeReport? CheckVolume(PoolDirectoryEntry entry, VolumeInspection volume, List<CheckProblem> problems, List<string> notes)
    {
        // --repair makes what a writable PmemVolume open makes (PoolInspector.RepairVolume): a header copy restored, and,
        // when the body has no error, orphaned chunks freed.
        foreach (PoolProblem problem in volume.Header.Problems)
        {
            problems.Add(problem.Severity == PoolProblemSeverity.Repairable
                ? new CheckProblem("volume", problem.Message + " (the next writable open of the volume restores it from the intact copy)",
                    "restore the copy from the intact one (what a writable PmemVolume open does)")
                : new CheckProblem("volume", problem.Message, null));
        }
        bool bodyOpens = volume.BodyValid && !volume.Problems.Any(p => p.Severity == PoolProblemSeverity.Error);
        foreach (VolumeProblem problem in volume.Problems)
        {
            string message = $"\"{entry.Name}\" {VolumeFieldName(problem.Field)}: {problem.Message}";
            if (problem.Severity == PoolProblemSeverity.Note)
            {
                notes.Add("volume " + message);
                continue;
            }
            problems.Add(problem.Severity == PoolProblemSeverity.Repairable
                ? new CheckProblem("volume", message + " (the next writable open of the volume reclaims the chunk)",
                    bodyOpens ? "publish 0 to the owner word, freeing the chunk (what a writable PmemVolume open does)" : null)
                : new CheckProblem("volume", message, null));
        }
        if (!volume.BodyValid)
        {
            return null;
        }
        VolumeSegmentReport[] segments = [.. volume.Segments.Select(s => new VolumeSegmentReport(s.Name, s.Segment, s.Slot, s.Chunks, s.UsedBytes, s.AllocatedLength))];
        return new VolumeReport(volume.ChunkSize, volume.ChunkCount, volume.DataCapacity, volume.SlotCount, volume.FreeSlots,
            segments.Sum(s => (long)s.Chunks), volume.UsedBytes, volume.FreeChunks, volume.FreeBytes, volume.ReclaimableChunks,
            segments.Select(s => s.Device).Distinct(StringComparer.Ordinal).Count(), segments);
    }

    /// <summary>One line on a volume's space: "3 segment(s) of 2 device(s) use 5 of 120 chunks of 64 KiB (320 KiB); 115 free (7.2 MiB); 61 of 64 slots free".</summary>
    internal static string VolumeSummary(VolumeReport volume, Func<long, string> size) => Invariant(
        $"{volume.Segments.Count} segment(s) of {volume.Devices} device(s) use {volume.UsedChunks} of {volume.ChunkCount} chunks of {size(volume.ChunkSize)} ({size(volume.UsedBytes)}); {volume.FreeChunks} free ({size(volume.FreeBytes)}{(volume.ReclaimableChunks > 0 ? Invariant($", {volume.ReclaimableChunks} of them reclaimed by the next open") : "")}); {volume.FreeSlots} of {volume.SlotCount} slots free");

    internal static string VolumeFieldName(VolumeField field) => field switch
    {
        VolumeField.ChunkTable => "chunk table",
        VolumeField.MediaError => "media error",
        _ => field.ToString().ToLowerInvariant(),
    };

    private static string? RepairText(PoolHeaderField field, PoolInspection pool) => field == PoolHeaderField.Directory
        ? (pool.DirectoryRepair == PoolHeaderRepair.PrimaryRestoredFromBackup ? "restore the primary directory from the intact backup" : "restore the backup directory from the primary") + " (what PmemPool.Open does on a writable open)"
        : pool.HeaderRepair switch
        {
            PoolHeaderRepair.PrimaryRestoredFromBackup => "restore the primary header from the intact backup (what PmemPool.Open does on a writable open)",
            _ => "restore the backup header from the primary (what PmemPool.Open does on a writable open)",
        };

    // The names the check has always printed for the fields.
    private static string FieldName(PoolHeaderField field) => field switch
    {
        PoolHeaderField.MajorVersion => "major version",
        PoolHeaderField.HeaderSize => "header size",
        PoolHeaderField.IncompatFeatures => "incompat features",
        PoolHeaderField.RoCompatFeatures => "ro-compat features",
        PoolHeaderField.CompatFeatures => "compat features",
        PoolHeaderField.Architecture => "architecture",
        PoolHeaderField.Layout => "layout",
        PoolHeaderField.Size => "size",
        PoolHeaderField.PageSize => "page size",
        PoolHeaderField.ReservedArea => "reserved area",
        PoolHeaderField.DataOffset => "data offset",
        PoolHeaderField.RootOffset => "root offset",
        PoolHeaderField.State => "state",
        PoolHeaderField.Directory => "directory",
        PoolHeaderField.Durability => "durability",
        _ => field.ToString(),
    };

    private static HeapReport? CheckHeap(DaxMapping map, long offset, long? length, List<CheckProblem> problems, List<string> notes)
    {
        HeapInspection heap = PoolInspector.InspectHeap(map, offset, length);
        foreach (HeapProblem problem in heap.Problems)
        {
            // The library's own sentence (TransactionalHeap.Open throws it capitalised, with a stop), under its field.
            string message = HeapFieldName(problem.Field) + ": " + problem.Message;
            switch (problem.Severity)
            {
                case PoolProblemSeverity.Error:
                    problems.Add(new CheckProblem("heap", message, null));
                    break;
                case PoolProblemSeverity.ReadOnly:
                    problems.Add(new CheckProblem("heap", message + " (TransactionalHeap.Open opens it read-only)", null));
                    break;
                case PoolProblemSeverity.Repairable:
                    problems.Add(new CheckProblem("heap", message, "a writable TransactionalHeap.Open restores the copy from the intact one"));
                    break;
                default:
                    notes.Add("heap " + message);
                    break;
            }
        }
        if (!heap.HeaderValid)
        {
            return null;
        }
        var lanes = heap.Lanes.Select(l => new HeapLaneReport(l.Lane, l.Generation, l.PendingEntries, l.PendingBytes, l.CommitsToReplay, l.EntriesToReplay)).ToArray();
        foreach (HeapLaneReport lane in lanes.Where(l => l.PendingEntries > 0))
        {
            notes.Add(Invariant($"heap lane {lane.Lane}: a transaction of generation {lane.Generation + 1} did not finish; recovery (the next TransactionalHeap.Open) rolls back {lane.PendingEntries} undo entries, {lane.PendingBytes} bytes"));
        }
        foreach (HeapLaneReport lane in lanes.Where(l => l.CommitsToReplay > 0))
        {
            notes.Add(Invariant($"heap lane {lane.Lane}: {lane.CommitsToReplay} committed redo transaction(s) whose home bytes may not be on the media yet; recovery (the next TransactionalHeap.Open) replays {lane.EntriesToReplay} redo entries (nothing is lost)"));
        }
        return new HeapReport(offset, heap.RegionLength, heap.LaneCount, heap.LaneLogSize, heap.RootSize, heap.ObjectSize, heap.ObjectCount, heap.AllocatedObjects,
            lanes.Count(l => l.PendingEntries > 0), lanes);
    }

    /// <summary>What the durability line adds for a pool created on volatile memory.</summary>
    internal const string VolatileSuffix = " (volatile memory, created with PoolCreateOptions.AllowVolatile: not durable across a reboot)";

    internal static string HeapFieldName(HeapField field) => field switch
    {
        HeapField.LaneGeneration => "lane generation",
        HeapField.UndoEntry => "undo entry",
        HeapField.ObjectMap => "allocation map",
        HeapField.MediaError => "media error",
        _ => field.ToString().ToLowerInvariant(),
    };

    private static PoolReport Empty(long offset, string primary, string backup)
        => new(offset, primary, backup, null, null, null, null, null, null, 0, 0, null, 0, 0, 0, 0, null, null, null, null, null, 0, null, [], "unknown", null, null);

    internal static string Hex(ulong value) => "0x" + value.ToString("x", CultureInfo.InvariantCulture);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// Reports a PmemLog through the library's public inspection (<see cref="PmemLog.Inspect"/>): the
/// header judged by the same routine PmemLog.Open runs, then every record from the head through the
/// tail word (damage there is a problem) and on to where recovery would end.
/// </summary>
internal static class LogChecker
{
    internal static LogReport? Check(DaxMapping map, long offset, long dataOffset, List<CheckProblem> problems, List<string> notes)
    {
        LogInspection inspection = PmemLog.Inspect(map, offset, dataOffset);
        foreach (LogProblem problem in inspection.Problems)
        {
            // A header problem is the library's own sentence (PmemLog.Open throws it capitalised, with a stop), under its field.
            string message = (problem.Field is LogHeaderField field ? LogFieldName(field) : Invariant($"frame at LSN {problem.Lsn}")) + ": " + problem.Message;
            switch (problem.Severity)
            {
                case PoolProblemSeverity.Error:
                    problems.Add(Problem(message));
                    break;
                case PoolProblemSeverity.ReadOnly:
                    problems.Add(Problem(message + " (PmemLog.Open opens it read-only)"));
                    break;
                default:
                    notes.Add("log " + message);
                    break;
            }
        }
        if (inspection.Capacity == 0)
        {
            return null;
        }
        return new LogReport(offset, inspection.FormatVersion?.ToString(), inspection.Capacity, inspection.Head, inspection.Tail, inspection.Records, inspection.Tail - inspection.Head,
            inspection.FirstDamagedLsn, inspection.FirstDamagedProblem);
    }

    internal static string LogFieldName(LogHeaderField field) => field switch
    {
        LogHeaderField.Magic => "signature",
        LogHeaderField.MediaError => "media error",
        _ => field.ToString().ToLowerInvariant(),
    };

    private static CheckProblem Problem(string message, string? repair = null) => new("log", message, repair);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
