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
    string? Compat,
    string? Incompat,
    string? RoCompat,
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
    string Root,
    LogReport? Log,
    HeapReport? Heap);

/// <summary>A log: header, head and tail, and the frames walked from head to tail.</summary>
internal sealed record LogReport(long Offset, long Capacity, long Head, long Tail, long Records, long UsedBytes, long? FirstBadLsn, string? FirstBadProblem);

/// <summary>A transactional heap: geometry, allocation and what recovery would roll back.</summary>
internal sealed record HeapReport(long Offset, long RegionLength, int LaneCount, int LaneLogSize, int RootSize, int ObjectSize, int ObjectCount, int AllocatedObjects, int LanesToRollBack, IReadOnlyList<HeapLaneReport> Lanes);

/// <summary>One lane of a heap.</summary>
internal sealed record HeapLaneReport(int Lane, ulong? Generation, int PendingEntries, long PendingBytes);

/// <summary>The repair a header check found possible: which copy to write from which.</summary>
internal enum HeaderRepair { None, PrimaryFromBackup, BackupFromPrimary }

/// <summary>
/// Reads a DirectPmem.Storage pool without trusting it: the primary and backup headers (format in
/// the library's PoolHeader: signature, XxHash3 of bytes [0, 4088) at 4088, fields at fixed
/// offsets), validated field by field in the order PmemPool.Open documents, every problem listed;
/// then the log or transactional heap the root points at (or that the caller names). Every offset
/// and length read from the media is checked before it is used; reads go through the bounds-checked
/// span API of a read-only mapping.
/// </summary>
internal static class PoolChecker
{
    internal const int HeaderSize = PmemPool.HeaderSize;
    internal const long MinimumSize = PmemPool.MinimumSize;
    private static ReadOnlySpan<byte> Signature => PoolHeader.Signature;

    /// <summary>Whether the mapping starts with a pool header (primary or backup signature).</summary>
    internal static bool LooksLikePool(DaxMapping map)
        => map.Length >= 2 * HeaderSize && (HasSignatureAt(map, 0) || HasSignatureAt(map, HeaderSize));

    // A poison-safe look at a signature: a block that cannot be read has none.
    private static bool HasSignatureAt(DaxMapping map, long offset)
    {
        Span<byte> block = stackalloc byte[8];
        return ReadHeaderSafe(map, offset, block) is null && block.SequenceEqual(Signature);
    }

    /// <summary>
    /// Reads header bytes through the poison-safe <see cref="DaxMapping.ReadSafe"/> (a plain copy where it is
    /// unavailable); returns what a media error made unreadable, or null when the bytes were read.
    /// </summary>
    private static string? ReadHeaderSafe(DaxMapping map, long offset, Span<byte> destination)
    {
        if (!DaxMapping.IsReadSafeSupported)
        {
            map.GetReadOnlySpan(offset, destination.Length).CopyTo(destination);
            return null;
        }
        try
        {
            map.ReadSafe(offset, destination);
            return null;
        }
        catch (PmemMediaErrorException e)
        {
            return Invariant($"unreadable: {(e.Kind == MediaErrorKind.Poison ? "poison" : "a page past the end of the file")} at [0x{e.BadOffset:x}, +0x{e.BadLength:x})");
        }
    }

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
    internal static PoolReport Check(DaxMapping map, long poolOffset, long? logOffset, long? heapOffset, List<CheckProblem> problems, List<string> notes, out HeaderRepair repair)
    {
        repair = HeaderRepair.None;
        if (map.Length < MinimumSize)
        {
            problems.Add(new CheckProblem("pool", Invariant($"size: the pool has {map.Length} bytes, fewer than the smallest pool ({MinimumSize} bytes: two headers and a data page)"), null));
            return Empty(poolOffset, "-", "-");
        }
        // Each copy through the poison-safe read: a copy that meets poison is reported unreadable, and the check lives.
        byte[] primary = new byte[HeaderSize];
        byte[] backup = new byte[HeaderSize];
        string primaryState = ReadHeaderSafe(map, 0, primary) ?? CopyState(primary);
        string backupState = ReadHeaderSafe(map, HeaderSize, backup) ?? CopyState(backup);
        bool primaryIntact = primaryState == "intact";
        bool backupIntact = backupState == "intact";

        // Steps 2-3: signature and checksum of each copy pick the one the library uses.
        if (!primaryIntact && !backupIntact)
        {
            problems.Add(new CheckProblem("pool", "primary header (offset 0): " + primaryState, null));
            problems.Add(new CheckProblem("pool", "backup header (offset 4096): " + backupState, null));
            notes.Add("neither header copy is intact: the library refuses the pool and there is no repair");
            return Empty(poolOffset, primaryState, backupState);
        }
        if (!primaryIntact)
        {
            repair = HeaderRepair.PrimaryFromBackup;
            problems.Add(new CheckProblem("pool", "primary header (offset 0): " + primaryState, "restore the primary header from the intact backup (what PmemPool.Open does on a writable open)"));
        }
        else if (!backupIntact)
        {
            repair = HeaderRepair.BackupFromPrimary;
            problems.Add(new CheckProblem("pool", "backup header (offset 4096): " + backupState, "restore the backup header from the intact primary (what PmemPool.Open does on a writable open)"));
        }
        else if (!primary.AsSpan().SequenceEqual(backup))
        {
            repair = HeaderRepair.BackupFromPrimary;
            problems.Add(new CheckProblem("pool", Invariant($"the backup header (generation {Generation(backup)}) differs from the primary (generation {Generation(primary)}): a header update was interrupted"),
                "restore the backup header from the primary (what PmemPool.Open does on a writable open)"));
        }
        ReadOnlySpan<byte> h = primaryIntact ? primary : backup;
        string used = primaryIntact ? "primary" : "backup";
        string where = used + " header";

        // The fields as the library reads them (PoolHeader.ReadFields), validated here one by one.
        PoolHeader fields = PoolHeader.ReadFields(h);

        // Step 4: version and header size.
        ushort major = fields.Major;
        ushort minor = fields.Minor;
        uint headerSize = fields.HeaderSize;
        if (major == 0 || major > 1)
        {
            Field(problems, where, "major version", Invariant($"the format version is {major}.{minor}; this library reads major version 1"));
        }
        if (headerSize != HeaderSize)
        {
            Field(problems, where, "header size", Invariant($"{headerSize}, expected {HeaderSize}"));
        }
        // Steps 5-6: features (this format version knows none).
        ulong compat = fields.Compat;
        ulong incompat = fields.Incompat;
        ulong roCompat = fields.RoCompat;
        if (incompat != 0)
        {
            Field(problems, where, "incompat features", $"unknown incompatible features {Hex(incompat)}: the library refuses the pool");
        }
        if (roCompat != 0)
        {
            notes.Add($"unknown read-only-compatible features {Hex(roCompat)}: the library opens the pool read-only");
        }
        if (compat != 0)
        {
            notes.Add($"compatible features {Hex(compat)} (ignored by this library)");
        }
        // Step 7: architecture.
        byte endianness = fields.Endianness;
        byte pointerSize = fields.PointerSize;
        ushort machine = fields.Machine;
        byte hostEndianness = PoolHeader.HostEndianness;
        if (endianness != hostEndianness)
        {
            Field(problems, where, "architecture", Invariant($"endianness {endianness}, this machine is {hostEndianness}"));
        }
        if (pointerSize != IntPtr.Size)
        {
            Field(problems, where, "architecture", Invariant($"pointer size {pointerSize}, this machine's is {IntPtr.Size}"));
        }
        if (machine != PoolHeader.HostMachine)
        {
            Field(problems, where, "architecture", Invariant($"ELF machine {machine}, this machine is {PoolHeader.HostMachine}"));
        }
        // Step 8: layout name.
        string? layout = ReadLayout(h.Slice(56, 64), out string? layoutProblem);
        if (layoutProblem is not null)
        {
            Field(problems, where, "layout", layoutProblem);
        }
        // Step 9: size and page size against the mapping.
        long poolSize = fields.PoolSize;
        long pageSize = fields.PageSize;
        if (poolSize != map.Length)
        {
            Field(problems, where, "size", Invariant($"the pool was created with {poolSize} bytes; the mapping has {map.Length}"));
        }
        if (pageSize != map.PageSize.ToBytes())
        {
            Field(problems, where, "page size", Invariant($"{pageSize}; the mapping's page size is {map.PageSize.ToBytes()}"));
        }
        // Step 10: reserved area, data offset, root offset, state.
        long reservedOffset = fields.ReservedOffset;
        long reservedLength = fields.ReservedLength;
        long dataOffset = fields.DataOffset;
        long rootOffset = fields.RootOffset;
        uint state = fields.State;
        uint flags = fields.Flags;
        ulong dirty = fields.DirtyShutdownCount;
        ulong generation = fields.Generation;
        long size = map.Length;
        bool areaValid = reservedOffset == PmemPool.ReservedAreaOffset && reservedLength >= 0 && reservedLength % HeaderSize == 0 && reservedLength <= size - MinimumSize;
        if (!areaValid)
        {
            Field(problems, where, "reserved area", Invariant($"[{reservedOffset}, +{reservedLength}) must start at {PmemPool.ReservedAreaOffset}, be a multiple of {HeaderSize} and leave a data page in {size} bytes"));
        }
        bool dataValid = areaValid && dataOffset == reservedOffset + reservedLength;
        if (areaValid && !dataValid)
        {
            Field(problems, where, "data offset", Invariant($"{dataOffset} must follow the reserved area at {reservedOffset + reservedLength}"));
        }
        bool rootValid = dataValid && (rootOffset == 0 || (rootOffset >= dataOffset && rootOffset < size));
        if (dataValid && !rootValid)
        {
            Field(problems, where, "root offset", Invariant($"{rootOffset} is neither 0 nor in the data area [{dataOffset}, {size})"));
        }
        if (state > 1)
        {
            Field(problems, where, "state", Invariant($"the state word is {state}; expected 0 (clean) or 1 (in use)"));
        }
        bool? clean = state switch { 0 => true, 1 => false, _ => null };
        if (clean == false)
        {
            notes.Add("the pool was not closed cleanly (state: in use), or is open now: the application runs its recovery on the next open");
        }

        // The root: a log, a heap, or application data.
        string root = "none (root offset 0)";
        LogReport? log = null;
        HeapReport? heap = null;
        if (rootValid && rootOffset != 0 && rootOffset <= size - 8)
        {
            ReadOnlySpan<byte> at = map.GetReadOnlySpan(rootOffset, 8);
            if (at.SequenceEqual("DPMLOG01"u8))
            {
                root = "log";
                logOffset ??= rootOffset;
            }
            else if (BinaryPrimitives.ReadUInt64LittleEndian(at) == HeapLayout.Signature)
            {
                root = "transactional heap";
                heapOffset ??= rootOffset;
            }
            else
            {
                root = "application data (neither a log nor a transactional heap)";
            }
        }
        long logDataOffset = dataValid ? dataOffset : PmemPool.ReservedAreaOffset;
        if (logOffset is long lo)
        {
            log = LogChecker.Check(map, lo, logDataOffset, problems);
        }
        if (heapOffset is long ho)
        {
            // PoolTransactions puts the heap in the whole data area, rounded down to 64 bytes.
            long? length = dataValid && ho == dataOffset ? (size - dataOffset) & ~63L : null;
            heap = CheckHeap(map, ho, length, problems, notes);
        }
        return new PoolReport(poolOffset, primaryState, backupState, used, Invariant($"{major}.{minor}"), Hex(compat), Hex(incompat), Hex(roCompat),
            fields.Uuid.ToString(), layout,
            DateTimeOffset.FromUnixTimeMilliseconds(Math.Clamp(fields.CreationTimeMs, -62135596800000, 253402300799999)).ToString("u", CultureInfo.InvariantCulture),
            poolSize, pageSize, Invariant($"endianness {endianness} ({(endianness == 1 ? "little" : endianness == 2 ? "big" : "?")}), pointer size {pointerSize}, machine {machine}{(machine == 62 ? " (x86-64)" : machine == 183 ? " (AArch64)" : "")}"),
            rootOffset, reservedOffset, reservedLength, dataOffset, clean switch { true => "clean", false => "in use (not closed cleanly, or open now)", _ => Invariant($"invalid ({state})") }, clean,
            (flags & 1) != 0 ? dirty : null, null, null, generation, root, log, heap);
    }

    /// <summary>Writes the intact copy over the other one, durably (the repair PmemPool.Open makes on a writable open).</summary>
    internal static void Repair(DaxMapping writable, HeaderRepair repair)
    {
        byte[] block = writable.GetReadOnlySpan(repair == HeaderRepair.PrimaryFromBackup ? HeaderSize : 0, HeaderSize).ToArray();
        writable.Write(block, repair == HeaderRepair.PrimaryFromBackup ? 0 : HeaderSize);
    }

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

    private static string CopyState(ReadOnlySpan<byte> block)
    {
        if (!block[..8].SequenceEqual(Signature))
        {
            return block.ContainsAnyExcept((byte)0) ? "no pool signature \"DPMPOOL\\0\" (overwritten, or not a pool)" : "no pool signature (all zero: never written, or wiped)";
        }
        ulong stored = BinaryPrimitives.ReadUInt64LittleEndian(block[PoolHeader.ChecksumOffset..]);
        ulong computed = PoolHeader.ComputeChecksum(block);
        return stored == computed ? "intact" : Invariant($"checksum 0x{stored:x16} does not match the contents (0x{computed:x16}): torn or damaged");
    }

    private static ulong Generation(ReadOnlySpan<byte> block) => PoolHeader.ReadFields(block).Generation;

    private static string? ReadLayout(ReadOnlySpan<byte> field, out string? problem)
    {
        int end = field.IndexOf((byte)0);
        if (end < 0 || field[end..].ContainsAnyExcept((byte)0))
        {
            problem = "the layout name is not a NUL-padded UTF-8 string of at most 63 bytes";
            return null;
        }
        try
        {
            problem = end == 0 ? "the layout name is empty" : null;
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(field[..end]);
        }
        catch (DecoderFallbackException)
        {
            problem = "the layout name is not valid UTF-8";
            return null;
        }
    }

    private static void Field(List<CheckProblem> problems, string where, string field, string message)
        => problems.Add(new CheckProblem("pool", $"{where}, {field}: {message}", null));

    private static PoolReport Empty(long offset, string primary, string backup)
        => new(offset, primary, backup, null, null, null, null, null, null, null, null, 0, 0, null, 0, 0, 0, 0, null, null, null, null, null, 0, "unknown", null, null);

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
    internal static LogReport? Check(DaxMapping map, long offset, long dataOffset, List<CheckProblem> problems)
    {
        LogInspection inspection = PmemLog.Inspect(map, offset, dataOffset);
        foreach (LogProblem problem in inspection.Problems)
        {
            string what = problem.Field is LogHeaderField field ? field.ToString().ToLowerInvariant() : Invariant($"frame at LSN {problem.Lsn}");
            problems.Add(Problem(what + ": " + problem.Message));
        }
        if (inspection.Capacity == 0)
        {
            return null;
        }
        return new LogReport(offset, inspection.Capacity, inspection.Head, inspection.Tail, inspection.Records, inspection.Tail - inspection.Head,
            inspection.FirstDamagedLsn, inspection.FirstDamagedProblem);
    }

    private static CheckProblem Problem(string message, string? repair = null) => new("log", message, repair);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
