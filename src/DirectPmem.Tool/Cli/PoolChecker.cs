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
    HeapReport? Heap);

/// <summary>A named structure in the pool's directory.</summary>
internal sealed record StructureReport(string Name, string Kind, long Offset, long Length);

/// <summary>A log: header, head and tail, and the frames walked from head to tail.</summary>
internal sealed record LogReport(long Offset, long Capacity, long Head, long Tail, long Records, long UsedBytes, long? FirstBadLsn, string? FirstBadProblem);

/// <summary>A transactional heap: geometry, allocation and what recovery would roll back.</summary>
internal sealed record HeapReport(long Offset, long RegionLength, int LaneCount, int LaneLogSize, int RootSize, int ObjectSize, int ObjectCount, int AllocatedObjects, int LanesToRollBack, IReadOnlyList<HeapLaneReport> Lanes);

/// <summary>One lane of a heap.</summary>
internal sealed record HeapLaneReport(int Lane, ulong? Generation, int PendingEntries, long PendingBytes);

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
            log = LogChecker.Check(map, lo, logDataOffset, problems);
        }
        if (heapOffset is long ho)
        {
            // PoolTransactions puts the heap in the whole data area, rounded down to 64 bytes.
            long? length = dataValid && ho == pool.DataOffset ? (map.Length - pool.DataOffset) & ~63L : null;
            heap = CheckHeap(map, ho, length, problems, notes);
        }
        // The named structures: each log and heap is walked as a root one is.
        foreach (PoolDirectoryEntry entry in pool.Structures)
        {
            if (entry.Kind == PoolStructureKind.Log && entry.Offset != logOffset)
            {
                LogChecker.Check(map, entry.Offset, logDataOffset, problems);
            }
            else if (entry.Kind == PoolStructureKind.TransactionalHeap && entry.Offset != heapOffset)
            {
                CheckHeap(map, entry.Offset, entry.Length, problems, notes);
            }
        }
        return new PoolReport(poolOffset, pool.PrimaryState, pool.BackupState, used, pool.FormatVersion?.ToString(2), pool.Features.ToString(),
            pool.Uuid.ToString(), pool.Layout, pool.CreationTime.ToString("u", CultureInfo.InvariantCulture),
            pool.Size, pool.PageSize, Invariant($"endianness {pool.Endianness} ({(pool.Endianness == 1 ? "little" : pool.Endianness == 2 ? "big" : "?")}), pointer size {pool.PointerSize}, machine {pool.Machine}{(pool.Machine == 62 ? " (x86-64)" : pool.Machine == 183 ? " (AArch64)" : "")}"),
            pool.RootOffset, pool.ReservedOffset, pool.ReservedLength, pool.DataOffset,
            pool.WasCleanlyClosed switch { true => "clean", false => "in use (not closed cleanly, or open now)", _ => "invalid" }, pool.WasCleanlyClosed,
            pool.RecordedDirtyShutdownCount, null, null, pool.Generation,
            pool.Durability is { } d ? $"{d} on {pool.CreatedOnBacking}" : "not recorded (format 1.0)",
            pool.Structures.Select(e => new StructureReport(e.Name, e.Kind.ToString(), e.Offset, e.Length)).ToArray(),
            root, log, heap);
    }

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
        foreach (string problem in heap.Problems)
        {
            problems.Add(new CheckProblem("heap", problem, null));
        }
        if (!heap.HeaderValid)
        {
            return null;
        }
        var lanes = heap.Lanes.Select(l => new HeapLaneReport(l.Lane, l.Generation, l.PendingEntries, l.PendingBytes)).ToArray();
        foreach (HeapLaneReport lane in lanes.Where(l => l.PendingEntries > 0))
        {
            notes.Add(Invariant($"heap lane {lane.Lane}: a transaction of generation {lane.Generation + 1} did not finish; recovery (the next TransactionalHeap.Open) rolls back {lane.PendingEntries} undo entries, {lane.PendingBytes} bytes"));
        }
        return new HeapReport(offset, heap.RegionLength, heap.LaneCount, heap.LaneLogSize, heap.RootSize, heap.ObjectSize, heap.ObjectCount, heap.AllocatedObjects,
            lanes.Count(l => l.PendingEntries > 0), lanes);
    }

    private static PoolReport Empty(long offset, string primary, string backup)
        => new(offset, primary, backup, null, null, null, null, null, null, 0, 0, null, 0, 0, 0, 0, null, null, null, null, null, 0, null, [], "unknown", null, null);

    internal static string Hex(ulong value) => "0x" + value.ToString("x", CultureInfo.InvariantCulture);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// Reads a PmemLog (format in the library's PmemLog remarks) without trusting it: the header in the
/// order PmemLog.Open checks it, then every frame from head to tail (LSN, length within the tail,
/// checksum), stopping at the first bad frame and saying what is wrong with it.
/// </summary>
internal static class LogChecker
{
    private const int HeaderLength = PmemLog.HeaderLength;
    private const int FrameHeader = PmemLog.FrameHeaderSize;

    private const uint LogFormatVersion = PmemLog.CurrentVersion;
    private static ReadOnlySpan<byte> Magic => PmemLog.Magic;

    internal static LogReport? Check(DaxMapping map, long offset, long dataOffset, List<CheckProblem> problems)
    {
        long size = map.Length;
        if (offset % HeaderLength != 0 || offset < dataOffset || offset > size - 2 * HeaderLength)
        {
            problems.Add(Problem(Invariant($"location: a log cannot start at {offset}; it must be a multiple of {HeaderLength} in the data area [{dataOffset}, {size - 2 * HeaderLength}]")));
            return null;
        }
        ReadOnlySpan<byte> header = map.GetReadOnlySpan(offset, HeaderLength);
        if (!header[..8].SequenceEqual(Magic))
        {
            problems.Add(Problem(Invariant($"magic: no log at offset {offset} (the magic \"DPMLOG01\" is missing)")));
            return null;
        }
        bool headerOk = true;
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(header[PmemLog.VersionOffset..]);
        if (version != LogFormatVersion)
        {
            problems.Add(Problem(Invariant($"version: the log at {offset} has format version {version}; this library reads version {LogFormatVersion}")));
            headerOk = false;
        }
        ulong stored = BinaryPrimitives.ReadUInt64LittleEndian(header[PmemLog.ChecksumOffset..]);
        ulong computed = XxHash3.HashToUInt64(header[..PmemLog.StaticLength]);
        if (stored != computed)
        {
            problems.Add(Problem(Invariant($"checksum: the log header at {offset} stores 0x{stored:x16}, its contents hash to 0x{computed:x16}")));
            headerOk = false;
        }
        long capacity = BinaryPrimitives.ReadInt64LittleEndian(header[PmemLog.CapacityOffset..]);
        if (capacity < HeaderLength || capacity % HeaderLength != 0 || capacity > size - offset - HeaderLength)
        {
            problems.Add(Problem(Invariant($"capacity: {capacity} is not a positive multiple of {HeaderLength} that fits in the pool after {offset} ({size - offset - HeaderLength} bytes)")));
            return null;
        }
        long tail = BinaryPrimitives.ReadInt64LittleEndian(header[PmemLog.TailWordOffset..]);
        long head = BinaryPrimitives.ReadInt64LittleEndian(header[PmemLog.HeadWordOffset..]);
        if (tail < 0 || tail % PmemLog.FrameAlignment != 0)
        {
            problems.Add(Problem(Invariant($"tail: the published tail {tail} is not a non-negative multiple of {PmemLog.FrameAlignment}")));
            return new LogReport(offset, capacity, head, tail, 0, 0, null, null);
        }
        if (head < 0 || head % PmemLog.FrameAlignment != 0 || head > tail || tail - head > capacity)
        {
            problems.Add(Problem(Invariant($"head: the published head {head} must be a multiple of {PmemLog.FrameAlignment} in [tail - capacity, tail] = [{tail - capacity}, {tail}]")));
            return new LogReport(offset, capacity, head, tail, 0, 0, null, null);
        }
        if (!headerOk)
        {
            return new LogReport(offset, capacity, head, tail, 0, tail - head, null, null);
        }

        long ring = offset + HeaderLength;
        long records = 0;
        for (long lsn = head; lsn < tail;)
        {
            string? bad = CheckFrame(map, ring, capacity, lsn, tail, out long next);
            if (bad is not null)
            {
                problems.Add(Problem(Invariant($"frame at LSN {lsn}: {bad}; the {records} record(s) before it read back, the {tail - lsn} bytes from it to the tail do not (the log reader stops there with LogCorruptException)"), null));
                return new LogReport(offset, capacity, head, tail, records, tail - head, lsn, bad);
            }
            records++;
            lsn = next;
        }
        return new LogReport(offset, capacity, head, tail, records, tail - head, null, null);
    }

    private static string? CheckFrame(DaxMapping map, long ring, long capacity, long lsn, long tail, out long next)
    {
        next = lsn;
        if (tail - lsn < FrameHeader)
        {
            return Invariant($"its {FrameHeader}-byte header would run past the durable tail {tail}");
        }
        // Frames are 16-byte aligned and the capacity a multiple of 4096: a header never wraps.
        ReadOnlySpan<byte> header = map.GetReadOnlySpan(ring + lsn % capacity, FrameHeader);
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(header);
        uint storedChecksum = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
        long storedLsn = BinaryPrimitives.ReadInt64LittleEndian(header[8..]);
        if (storedLsn != lsn)
        {
            return Invariant($"the frame carries LSN {storedLsn}");
        }
        if (length > (ulong)(tail - lsn - FrameHeader) || length > int.MaxValue - 128)
        {
            return Invariant($"the frame claims {length} bytes, past the durable tail {tail}");
        }
        var hash = new XxHash3(PmemLog.ChecksumSeed(lsn, length));
        long position = lsn + FrameHeader;
        long left = length;
        while (left > 0)
        {
            long physical = position % capacity;
            int chunk = (int)Math.Min(Math.Min(left, capacity - physical), 1 << 30);
            hash.Append(map.GetReadOnlySpan(ring + physical, chunk));
            position += chunk;
            left -= chunk;
        }
        uint computed = (uint)hash.GetCurrentHashAsUInt64();
        if (computed != storedChecksum)
        {
            return Invariant($"the {length}-byte payload fails its checksum (stored 0x{storedChecksum:x8}, computed 0x{computed:x8})");
        }
        next = lsn + PmemLog.FrameLength((int)length);
        return null;
    }

    private static CheckProblem Problem(string message, string? repair = null) => new("log", message, repair);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
