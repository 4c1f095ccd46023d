using System.Buffers.Binary;
using System.Globalization;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Persistence;
using DirectPmem.Storage.Transactions;

namespace DirectPmem.Storage;

/// <summary>
/// Read-only inspection of what DirectPmem.Storage keeps in a mapping, for tools such as
/// <c>dpmem check</c> and <c>dpmem info</c>: it writes nothing, validates every length and offset it
/// reads before using it, and reports the problems it finds instead of throwing at the first.
/// </summary>
public static partial class PoolInspector
{
    /// <summary>
    /// Inspects the pool in <paramref name="mapping"/> with the library's own parser and validation (the
    /// ones <see cref="PmemPool.Open"/> runs), collecting every problem instead of throwing at the first:
    /// both header copies (read poison-safe), the copy an open would use and the repair it would make,
    /// every header field, the directory and what the root points at. Nothing is written, the pool is not
    /// marked in use or clean, and no structure is recovered: the evidence of a crash stays as it is.
    /// </summary>
    /// <param name="mapping">The mapping holding the pool (read-only is enough).</param>
    /// <param name="expectedLayout">The layout the application expects, or <see langword="null"/> not to compare it.</param>
    /// <returns>What was found; <see cref="PoolInspection.Problems"/> has no error for a pool <see cref="PmemPool.Open"/> accepts.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="mapping"/> is null.</exception>
    public static PoolInspection InspectPool(DaxMapping mapping, string? expectedLayout = null)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        var sink = new CollectingPoolSink();
        if (mapping.Length < 2 * PoolHeader.Size)
        {
            sink.Report(PoolHeaderField.Size, PoolProblemSeverity.Error, Invariant($"the mapping has {mapping.Length} bytes, fewer than the smallest pool ({PmemPool.MinimumOpenSize} bytes: two headers and a data page)"));
            return new PoolInspection(sink.Problems, "-", "-");
        }
        byte[] primary = new byte[PoolHeader.Size];
        byte[] backup = new byte[PoolHeader.Size];
        string? primaryLost = PmemPool.ReadCopy(mapping, new PmemRange(PoolHeader.PrimaryOffset, PoolHeader.Size), primary, [], "the primary header", out _);
        string? backupLost = PmemPool.ReadCopy(mapping, new PmemRange(PoolHeader.BackupOffset, PoolHeader.Size), backup, [], "the backup header", out _);
        string primaryState = primaryLost ?? FormatHeader.Describe(primary, PoolHeader.Rules);
        string backupState = backupLost ?? FormatHeader.Describe(backup, PoolHeader.Rules);
        bool signature = (primaryLost is null && PoolHeader.HasSignature(primary)) || (backupLost is null && PoolHeader.HasSignature(backup));
        if (mapping.Length < PmemPool.MinimumOpenSize)
        {
            sink.Report(PoolHeaderField.Size, PoolProblemSeverity.Error, Invariant($"the mapping has {mapping.Length} bytes, fewer than the smallest pool ({PmemPool.MinimumOpenSize} bytes: two headers and a data page)"));
            return new PoolInspection(sink.Problems, primaryState, backupState) { LooksLikePool = signature };
        }
        if (!FormatHeader.Choose(primaryLost is null ? primary : null, backupLost is null ? backup : null, PoolHeader.Rules, out bool primaryChosen, out PoolHeaderRepair repair))
        {
            sink.Report(PoolHeaderField.Checksum, PoolProblemSeverity.Error, "primary header (offset 0): " + primaryState);
            sink.Report(PoolHeaderField.Checksum, PoolProblemSeverity.Error, "backup header (offset 4096): " + backupState);
            return new PoolInspection(sink.Problems, primaryState, backupState) { LooksLikePool = signature };
        }
        if (repair == PoolHeaderRepair.PrimaryRestoredFromBackup)
        {
            sink.Report(PoolHeaderField.Checksum, PoolProblemSeverity.Repairable, "primary header (offset 0): " + primaryState);
        }
        else if (repair == PoolHeaderRepair.BackupRestoredFromPrimary)
        {
            sink.Report(PoolHeaderField.Checksum, PoolProblemSeverity.Repairable, backupLost is null && PoolHeader.Intact(backup)
                ? Invariant($"the backup header (generation {PoolHeader.GenerationOf(backup)}) differs from the primary (generation {PoolHeader.GenerationOf(primary)}): a header update was interrupted")
                : "backup header (offset 4096): " + backupState);
        }
        byte[] chosen = primaryChosen ? primary : backup;
        PoolHeader header = PoolHeader.Read(chosen, sink);
        PoolHeader.Validate(chosen, header, expectedLayout, mapping.Length, mapping.PageSize.ToBytes(), sink);

        IReadOnlyList<PoolDirectoryEntry> structures = [];
        PoolHeaderRepair directoryRepair = PoolHeaderRepair.None;
        bool geometryValid = !sink.Problems.Any(p => p.Severity == PoolProblemSeverity.Error
            && p.Field is PoolHeaderField.Size or PoolHeaderField.ReservedArea or PoolHeaderField.DataOffset);
        if (header.HasDirectory && geometryValid)
        {
            structures = PmemPool.ReadDirectory(mapping, header, [], sink, mapping.Path, out _, out byte[]? repairFrom, out bool directoryPrimary, out _);
            if (repairFrom is not null)
            {
                directoryRepair = directoryPrimary ? PoolHeaderRepair.BackupRestoredFromPrimary : PoolHeaderRepair.PrimaryRestoredFromBackup;
                sink.Report(PoolHeaderField.Directory, PoolProblemSeverity.Repairable, directoryPrimary
                    ? "the backup directory (offset 12288) is damaged or differs from the primary: a directory update was interrupted"
                    : "the primary directory (offset 8192) is damaged: a directory update was interrupted");
            }
        }

        PoolRootKind root = PoolRootKind.None;
        bool rootValid = geometryValid && !sink.Problems.Any(p => p.Severity == PoolProblemSeverity.Error && p.Field == PoolHeaderField.RootOffset);
        if (rootValid && header.RootOffset != 0)
        {
            root = PoolRootKind.ApplicationData;
            // Read poison-safe like every other read here: a lost page at the root is a note, and the root application data.
            Span<byte> at = stackalloc byte[8];
            PmemMediaErrorException? lost = header.RootOffset <= mapping.Length - 8 ? MediaRead.TryCopy(mapping, header.RootOffset, at) : null;
            if (lost is not null)
            {
                sink.Report(PoolHeaderField.RootOffset, PoolProblemSeverity.Note, Invariant(
                    $"the first bytes at the root (offset {header.RootOffset}) cannot be read (a media error at [0x{lost.BadOffset:x}, +0x{lost.BadLength:x})): what the root holds is unknown"));
            }
            else if (header.RootOffset <= mapping.Length - 8)
            {
                ulong word = BinaryPrimitives.ReadUInt64LittleEndian(at);
                root = word == LogFormat.Signature ? PoolRootKind.Log
                    : word == HeapLayout.Signature ? PoolRootKind.TransactionalHeap
                    : PoolRootKind.ApplicationData;
            }
        }
        return new PoolInspection(sink.Problems, primaryState, backupState)
        {
            LooksLikePool = true,
            HeaderUsed = primaryChosen ? PoolHeaderCopy.Primary : PoolHeaderCopy.Backup,
            HeaderRepair = repair,
            DirectoryRepair = directoryRepair,
            FormatVersion = new Version(header.Major, header.Minor),
            Features = PmemPool.FeaturesOf(header),
            Uuid = header.Uuid,
            Layout = header.Layout.Length > 0 ? header.Layout : null,
            CreationTime = DateTimeOffset.FromUnixTimeMilliseconds(Math.Clamp(header.CreationTimeMs, -62135596800000, 253402300799999)),
            Size = header.PoolSize,
            PageSize = header.PageSize,
            Endianness = header.Endianness,
            PointerSize = header.PointerSize,
            Machine = header.Machine,
            RootOffset = header.RootOffset,
            ReservedOffset = header.ReservedOffset,
            ReservedLength = header.ReservedLength,
            DataOffset = header.DataOffset,
            WasCleanlyClosed = header.State switch { PoolHeader.StateClean => true, PoolHeader.StateInUse => false, _ => null },
            RecordedDirtyShutdownCount = (header.Flags & PoolHeader.FlagDirtyShutdownKnown) != 0 ? header.DirtyShutdownCount : null,
            Generation = header.Generation,
            Durability = (header.Compat & PoolHeader.CompatDurability) != 0 && header.Durability is >= 1 and <= (byte)PersistGranularity.Byte + 1 ? (PersistGranularity)(header.Durability - 1) : null,
            CreatedOnBacking = (header.Compat & PoolHeader.CompatDurability) != 0 && header.Backing is >= 1 and <= (byte)MappingBacking.DeviceDax + 1 ? (MappingBacking)(header.Backing - 1) : null,
            Structures = structures,
            RootKind = root,
        };
    }

    /// <summary>
    /// Makes the repairs <see cref="InspectPool"/> reports as <see cref="PoolProblemSeverity.Repairable"/> (the ones a
    /// writable <see cref="PmemPool.Open"/> makes): the damaged or stale copy of the header, and of the directory, is
    /// rewritten durably from the intact one. Nothing else is written: the pool is not marked in use or clean.
    /// </summary>
    /// <param name="mapping">A writable mapping holding the pool.</param>
    /// <returns>The inspection after the repair.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="mapping"/> is null.</exception>
    /// <exception cref="ArgumentException">The mapping is read-only.</exception>
    public static PoolInspection RepairPool(DaxMapping mapping)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        if (mapping.IsReadOnly)
        {
            throw new ArgumentException("RepairPool needs a writable mapping.", nameof(mapping));
        }
        PoolInspection before = InspectPool(mapping);
        RepairCopy(mapping, before.HeaderRepair, PoolHeader.PrimaryOffset, PoolHeader.BackupOffset, PoolHeader.Size);
        RepairCopy(mapping, before.DirectoryRepair, PoolDirectory.PrimaryOffset, PoolDirectory.BackupOffset, PoolDirectory.BlockSize);
        return InspectPool(mapping);
    }

    private static void RepairCopy(DaxMapping mapping, PoolHeaderRepair repair, long primary, long backup, int size)
    {
        if (repair == PoolHeaderRepair.None)
        {
            return;
        }
        bool fromBackup = repair == PoolHeaderRepair.PrimaryRestoredFromBackup;
        byte[] block = mapping.GetReadOnlySpan(fromBackup ? backup : primary, size).ToArray();
        mapping.Write(block, fromBackup ? primary : backup);
    }

    /// <summary>
    /// Inspects the transactional heap whose region starts at <paramref name="offset"/> with the validation
    /// <see cref="TransactionalHeap.Open"/> runs (the same routine, collecting instead of throwing): both header
    /// copies, every lane's generation word and commit record, the undo entries recovery would roll back, and the
    /// allocation map, all read poison-safe. Nothing is written and nothing is recovered: the evidence of a crash stays.
    /// </summary>
    /// <param name="mapping">The mapping holding the heap (read-only is enough).</param>
    /// <param name="offset">The mapping offset of the heap's region.</param>
    /// <param name="length">The region's length, or <see langword="null"/> to take the one the header records (after checking it fits).</param>
    /// <returns>What was found; <see cref="HeapInspection.Problems"/> is empty for a sound heap.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="mapping"/> is null.</exception>
    public static HeapInspection InspectHeap(DaxMapping mapping, long offset, long? length = null)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        var sink = new CollectingHeapSink();
        if (offset < 0 || offset % 64 != 0 || offset > mapping.Length - HeapLayout.HeaderBlock)
        {
            sink.Report(HeapField.Region, PoolProblemSeverity.Error, offset, Invariant($"a heap cannot start at {offset}: its region must start at a multiple of 64 with at least {HeapLayout.HeaderBlock} bytes before the end of the mapping ({mapping.Length} bytes)"));
            return new HeapInspection(null, sink.Problems);
        }
        if (length is long given && (given < HeapLayout.HeaderBlock || given % 64 != 0 || given > mapping.Length - offset))
        {
            sink.Report(HeapField.Region, PoolProblemSeverity.Error, offset, Invariant($"the heap's region length {given} at offset {offset} is not a multiple of 64 from {HeapLayout.HeaderBlock} bytes up that fits in the mapping ({mapping.Length - offset} bytes left)"));
            return new HeapInspection(null, sink.Problems);
        }
        return new HeapInspection(HeapValidation.Examine(mapping, offset, length, sink), sink.Problems);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>One problem found by <see cref="PoolInspector.InspectHeap"/> (or met by <see cref="TransactionalHeap.Open"/>, which throws an error as a <see cref="TransactionalHeapFormatException"/> with the same field, offset and sentence).</summary>
public sealed class HeapProblem
{
    internal HeapProblem(HeapField field, PoolProblemSeverity severity, long offset, string message)
    {
        Field = field;
        Severity = severity;
        Offset = offset;
        Message = message;
    }

    /// <summary>The part of the heap the problem is about.</summary>
    public HeapField Field { get; }

    /// <summary>How serious it is: <see cref="PoolProblemSeverity.Error"/> refuses the open, <see cref="PoolProblemSeverity.ReadOnly"/> opens the heap read-only, <see cref="PoolProblemSeverity.Repairable"/> is repaired by a writable open.</summary>
    public PoolProblemSeverity Severity { get; }

    /// <summary>The mapping offset of the value (or the read) that failed.</summary>
    public long Offset { get; }

    /// <summary>What was expected and what was found, one sentence without a final stop.</summary>
    public string Message { get; }

    /// <summary>"Error Checksum at 0x78: ...".</summary>
    /// <returns>The severity, field, offset and message.</returns>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Severity} {Field} at 0x{Offset:x}: {Message}");
}

/// <summary>What <see cref="PoolInspector.InspectHeap"/> found in a transactional heap.</summary>
public sealed class HeapInspection
{
    private readonly HeapLayout _layout;

    internal HeapInspection(HeapScan? scan, IReadOnlyList<HeapProblem> problems)
    {
        HeaderValid = scan is not null;
        Problems = problems;
        _layout = scan?.Layout ?? default;
        Lanes = scan is null ? [] : [.. Enumerable.Range(0, _layout.LaneCount).Select(i => new HeapLaneInspection(i, scan.Generations[i], scan.PendingEntries[i], scan.PendingBytes[i], scan.CommitsReplayed[i], scan.ReplayEntries[i]))];
        AllocatedObjects = scan?.Map is byte[] map ? map.AsSpan().Count((byte)1) : 0;
        HeaderRepair = scan?.HeaderRepair ?? PoolHeaderRepair.None;
    }

    /// <summary>Whether a header copy validated (the geometry below is known only then; otherwise it is all 0).</summary>
    public bool HeaderValid { get; }

    /// <summary>Every problem found, in the order <see cref="TransactionalHeap.Open"/> meets them; empty for a sound heap.</summary>
    public IReadOnlyList<HeapProblem> Problems { get; }

    /// <summary>Whether <see cref="TransactionalHeap.Open"/> would accept the heap: no problem of severity <see cref="PoolProblemSeverity.Error"/>.</summary>
    public bool Opens => !Problems.Any(p => p.Severity == PoolProblemSeverity.Error);

    /// <summary>Whether <see cref="TransactionalHeap.Open"/> would open it read-only (a problem of severity <see cref="PoolProblemSeverity.ReadOnly"/>, and no error).</summary>
    public bool OpensReadOnly => Opens && Problems.Any(p => p.Severity == PoolProblemSeverity.ReadOnly);

    /// <summary>The header repair a writable open makes.</summary>
    public PoolHeaderRepair HeaderRepair { get; }

    /// <summary>The heap's region length.</summary>
    public long RegionLength => _layout.RegionLength;

    /// <summary>The number of lanes.</summary>
    public int LaneCount => _layout.LaneCount;

    /// <summary>The undo log capacity of each lane in bytes.</summary>
    public int LaneLogSize => _layout.LaneLogSize;

    /// <summary>The size of the root area in bytes.</summary>
    public int RootSize => _layout.RootSize;

    /// <summary>The size of one object in bytes.</summary>
    public int ObjectSize => _layout.ObjectSize;

    /// <summary>The number of objects.</summary>
    public int ObjectCount => _layout.ObjectCount;

    /// <summary>How many objects the allocation map marks allocated (0 when it could not be read).</summary>
    public int AllocatedObjects { get; }

    /// <summary>Each lane: its last finished generation and what recovery would roll back or replay.</summary>
    public IReadOnlyList<HeapLaneInspection> Lanes { get; }
}

/// <summary>One lane of a transactional heap, as <see cref="PoolInspector.InspectHeap"/> read it.</summary>
public sealed class HeapLaneInspection
{
    internal HeapLaneInspection(int lane, ulong? generation, int pendingEntries, long pendingBytes, int commitsToReplay = 0, int entriesToReplay = 0)
    {
        Lane = lane;
        Generation = generation;
        PendingEntries = pendingEntries;
        PendingBytes = pendingBytes;
        CommitsToReplay = commitsToReplay;
        EntriesToReplay = entriesToReplay;
    }

    /// <summary>The lane's index.</summary>
    public int Lane { get; }

    /// <summary>The last finished generation, or <see langword="null"/> when the generation word is damaged or unreadable.</summary>
    public ulong? Generation { get; }

    /// <summary>How many undo entries of an unfinished transaction recovery would write back (0: nothing to roll back).</summary>
    public int PendingEntries { get; }

    /// <summary>How many bytes that rollback would write back.</summary>
    public long PendingBytes { get; }

    /// <summary>
    /// How many redo commits recovery would replay (0 to 2): commits that are durable in the lane's
    /// logs but whose home bytes the media may not hold yet (the heap was not disposed after them).
    /// Replaying is idempotent and part of a normal restart; nothing is lost.
    /// </summary>
    public int CommitsToReplay { get; }

    /// <summary>How many redo entries that replay would write home.</summary>
    public int EntriesToReplay { get; }
}

/// <summary>How serious a problem an inspection found is.</summary>
public enum PoolProblemSeverity
{
    /// <summary><see cref="PmemPool.Open"/> refuses the pool for it.</summary>
    Error,

    /// <summary><see cref="PmemPool.Open"/> opens the pool read-only for it (an unknown read-only-compatible feature).</summary>
    ReadOnly,

    /// <summary>A writable <see cref="PmemPool.Open"/> (or <see cref="PoolInspector.RepairPool"/>) repairs it from the intact copy.</summary>
    Repairable,

    /// <summary>Worth knowing; no effect on an open.</summary>
    Note,
}

/// <summary>Which header copy an inspection (and an open) uses.</summary>
public enum PoolHeaderCopy
{
    /// <summary>The primary header at offset 0.</summary>
    Primary,

    /// <summary>The backup header at offset 4096.</summary>
    Backup,
}

/// <summary>What a pool's root offset points at, as far as the library can tell from a signature.</summary>
public enum PoolRootKind
{
    /// <summary>The root offset is 0.</summary>
    None,

    /// <summary>A <see cref="PmemLog"/> header.</summary>
    Log,

    /// <summary>A <see cref="Transactions.TransactionalHeap"/> header (as <see cref="Transactions.PoolTransactions"/> makes).</summary>
    TransactionalHeap,

    /// <summary>Neither: the application's own data.</summary>
    ApplicationData,
}

/// <summary>One problem found by <see cref="PoolInspector.InspectPool"/> (or met by <see cref="PmemPool.Open"/>, which throws it as a <see cref="PoolFormatException"/>).</summary>
public sealed class PoolProblem
{
    internal PoolProblem(PoolHeaderField field, PoolProblemSeverity severity, string message)
    {
        Field = field;
        Severity = severity;
        Message = message;
    }

    /// <summary>The field (or structure) the problem is about.</summary>
    public PoolHeaderField Field { get; }

    /// <summary>How serious it is.</summary>
    public PoolProblemSeverity Severity { get; }

    /// <summary>What was expected and what was found, one sentence without a final stop.</summary>
    public string Message { get; }

    /// <summary>"Error MajorVersion: ...".</summary>
    /// <returns>The severity, field and message.</returns>
    public override string ToString() => $"{Severity} {Field}: {Message}";
}

/// <summary>What <see cref="PoolInspector.InspectPool"/> found in a pool. Values past the header copies are known only when a copy was intact (<see cref="HeaderUsed"/> set).</summary>
public sealed class PoolInspection
{
    internal PoolInspection(IReadOnlyList<PoolProblem> problems, string primaryState, string backupState)
    {
        Problems = problems;
        PrimaryState = primaryState;
        BackupState = backupState;
    }

    /// <summary>Every problem found, in the order <see cref="PmemPool.Open"/> checks; no <see cref="PoolProblemSeverity.Error"/> means the library opens it.</summary>
    public IReadOnlyList<PoolProblem> Problems { get; }

    /// <summary>Whether <see cref="PmemPool.Open"/> would accept the pool (layout aside when none was given): no problem of severity <see cref="PoolProblemSeverity.Error"/>.</summary>
    public bool Opens => !Problems.Any(p => p.Severity == PoolProblemSeverity.Error);

    /// <summary>Whether either header copy carries the pool signature.</summary>
    public bool LooksLikePool { get; internal init; }

    /// <summary>The primary header's state, one phrase ("intact", "checksum ... torn or damaged", "unreadable: poison ...").</summary>
    public string PrimaryState { get; }

    /// <summary>The backup header's state, one phrase.</summary>
    public string BackupState { get; }

    /// <summary>The copy an open uses, or <see langword="null"/> when neither is intact.</summary>
    public PoolHeaderCopy? HeaderUsed { get; internal init; }

    /// <summary>The header repair a writable open (or <see cref="PoolInspector.RepairPool"/>) makes.</summary>
    public PoolHeaderRepair HeaderRepair { get; internal init; }

    /// <summary>The directory repair a writable open (or <see cref="PoolInspector.RepairPool"/>) makes.</summary>
    public PoolHeaderRepair DirectoryRepair { get; internal init; }

    /// <summary>The format version.</summary>
    public Version? FormatVersion { get; internal init; }

    /// <summary>The known features the pool uses.</summary>
    public PoolFeatures Features { get; internal init; }

    /// <summary>The pool's UUID.</summary>
    public Guid Uuid { get; internal init; }

    /// <summary>The layout name, or <see langword="null"/> when the field is not a valid name.</summary>
    public string? Layout { get; internal init; }

    /// <summary>When the pool was created (clamped to what <see cref="DateTimeOffset"/> holds).</summary>
    public DateTimeOffset CreationTime { get; internal init; }

    /// <summary>The pool size recorded at creation.</summary>
    public long Size { get; internal init; }

    /// <summary>The page size recorded at creation.</summary>
    public long PageSize { get; internal init; }

    /// <summary>The endianness recorded at creation: 1 little, 2 big.</summary>
    public int Endianness { get; internal init; }

    /// <summary>The pointer size recorded at creation.</summary>
    public int PointerSize { get; internal init; }

    /// <summary>The ELF machine recorded at creation (62 x86-64, 183 AArch64).</summary>
    public int Machine { get; internal init; }

    /// <summary>The application's root offset.</summary>
    public long RootOffset { get; internal init; }

    /// <summary>What the root offset points at.</summary>
    public PoolRootKind RootKind { get; internal init; }

    /// <summary>The start of the reserved area.</summary>
    public long ReservedOffset { get; internal init; }

    /// <summary>The length of the reserved area (the directory included).</summary>
    public long ReservedLength { get; internal init; }

    /// <summary>The start of the data area.</summary>
    public long DataOffset { get; internal init; }

    /// <summary>Whether the pool was closed cleanly; <see langword="false"/> when it is in use (or was not closed), <see langword="null"/> when the state word is invalid.</summary>
    public bool? WasCleanlyClosed { get; internal init; }

    /// <summary>The dirty-shutdown count the pool recorded at its last open, or <see langword="null"/> when none was known.</summary>
    public ulong? RecordedDirtyShutdownCount { get; internal init; }

    /// <summary>The header's generation (+1 on every header update).</summary>
    public ulong Generation { get; internal init; }

    /// <summary>The durability the pool was created with, or <see langword="null"/> when the pool does not record it (format 1.0).</summary>
    public PersistGranularity? Durability { get; internal init; }

    /// <summary>The backing the pool was created on, or <see langword="null"/> when the pool does not record it.</summary>
    public MappingBacking? CreatedOnBacking { get; internal init; }

    /// <summary>Whether the pool was created on volatile memory (with <see cref="PoolCreateOptions.AllowVolatile"/>): its contents do not survive a reboot or power loss.</summary>
    public bool CreatedOnVolatileMemory => CreatedOnBacking is MappingBacking backing && PmemPool.IsVolatile(backing);

    /// <summary>The named structures in the directory (the valid entries), by offset.</summary>
    public IReadOnlyList<PoolDirectoryEntry> Structures { get; internal init; } = [];
}
