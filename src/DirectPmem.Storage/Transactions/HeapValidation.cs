using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using DirectPmem.Mapping;

namespace DirectPmem.Storage.Transactions;

/// <summary>Where the heap's validation reports a problem: the field, how serious, the mapping offset and one sentence without a final stop.</summary>
internal interface IHeapProblemSink
{
    void Report(HeapField field, PoolProblemSeverity severity, long offset, string message, Exception? cause = null);
}

/// <summary>
/// <see cref="TransactionalHeap.Open"/>'s sink: the first error is a <see cref="TransactionalHeapFormatException"/>;
/// the first read-only reason is kept (the heap then opens read-only and recovery writes nothing).
/// </summary>
internal sealed class ThrowingHeapSink : IHeapProblemSink
{
    public string? ReadOnlyReason { get; private set; }

    public void Report(HeapField field, PoolProblemSeverity severity, long offset, string message, Exception? cause = null)
    {
        if (severity == PoolProblemSeverity.Error)
        {
            throw new TransactionalHeapFormatException(field, offset, Sentence(message), cause);
        }
        if (severity == PoolProblemSeverity.ReadOnly)
        {
            ReadOnlyReason ??= message;
        }
    }

    /// <summary>The exception's sentence for a problem's message: capitalised, with a final stop.</summary>
    public static string Sentence(string message) => char.ToUpperInvariant(message[0]) + message[1..] + ".";
}

/// <summary><see cref="PoolInspector.InspectHeap"/>'s sink: every problem, in the order Open meets them.</summary>
internal sealed class CollectingHeapSink : IHeapProblemSink
{
    public List<HeapProblem> Problems { get; } = [];

    public void Report(HeapField field, PoolProblemSeverity severity, long offset, string message, Exception? cause = null)
        => Problems.Add(new HeapProblem(field, severity, offset, message));
}

/// <summary>A log entry recovery writes home (its payload to its target): an undo entry it rolls back, or a redo entry it replays.</summary>
internal readonly record struct UndoEntryRef(int Lane, long Entry, long Target, int Length, bool Redo = false);

/// <summary>What <see cref="HeapValidation.Examine"/> read: the layout and, per lane, what recovery does.</summary>
internal sealed class HeapScan
{
    public HeapScan(HeapLayout layout)
    {
        Layout = layout;
        Generations = new ulong?[layout.LaneCount];
        Resolved = new ulong[layout.LaneCount];
        PendingEntries = new int[layout.LaneCount];
        PendingBytes = new long[layout.LaneCount];
        CommitsReplayed = new int[layout.LaneCount];
        ReplayEntries = new int[layout.LaneCount];
    }

    /// <summary>Per lane, how many redo commits recovery replays (0 to 2).</summary>
    public int[] CommitsReplayed { get; }

    /// <summary>Per lane, how many redo entries recovery replays.</summary>
    public int[] ReplayEntries { get; }

    public HeapLayout Layout { get; }

    /// <summary>The copy a writable open rewrites from the other one.</summary>
    public PoolHeaderRepair HeaderRepair { get; set; }

    /// <summary>Each lane's durable generation word, or null when it is damaged or unreadable.</summary>
    public ulong?[] Generations { get; }

    /// <summary>Each lane's generation to publish as finished once the rollbacks are durable.</summary>
    public ulong[] Resolved { get; }

    public int[] PendingEntries { get; }

    public long[] PendingBytes { get; }

    /// <summary>The entries to write home, lane by lane: each lane's replayed redo entries in generation and log order, then its undo entries to roll back.</summary>
    public List<UndoEntryRef> Rollbacks { get; } = [];

    /// <summary>The allocation map as read, or null when it could not be read.</summary>
    public byte[]? Map { get; set; }
}

/// <summary>
/// The one validation of a transactional heap, shared by <see cref="TransactionalHeap.Open"/> (a
/// throwing sink) and <see cref="PoolInspector.InspectHeap"/> (a collecting one). It reads only, and
/// every read of the media goes through the poison-safe copy (<see cref="MediaRead.Copy"/>): both
/// header copies, each lane's line (generation word and commit record), the undo entries, the data
/// a commit record's hash covers and the allocation map. A copy that meets poison or a page past the
/// end of a truncated file is a problem, never a crash: a lost header copy with the other intact, a
/// lost lane line, undo entry, hashed range or allocation map make the heap read-only (recovery then
/// writes nothing, so an unreadable snapshot is never half restored, and a store never lands on a
/// bad line); both header copies lost is an error.
/// </summary>
internal static class HeapValidation
{
    /// <summary>
    /// Examines the heap in [<paramref name="offset"/>, +<paramref name="length"/>) (the length the
    /// header records when null, after checking that it fits in the mapping). Returns null after an error.
    /// </summary>
    public static HeapScan? Examine(DaxMapping mapping, long offset, long? length, IHeapProblemSink sink)
    {
        byte[] primary = new byte[HeapLayout.HeaderLength];
        byte[] backup = new byte[HeapLayout.HeaderLength];
        PmemMediaErrorException? primaryLost = MediaRead.TryCopy(mapping, offset, primary);
        PmemMediaErrorException? backupLost = MediaRead.TryCopy(mapping, offset + HeapLayout.BackupOffset, backup);
        if (!FormatHeader.Choose(primaryLost is null ? primary : null, backupLost is null ? backup : null, HeapLayout.Rules, out bool primaryChosen, out PoolHeaderRepair repair))
        {
            string primaryState = primaryLost is null ? FormatHeader.Describe(primary, HeapLayout.Rules) : Lost(primaryLost);
            string backupState = backupLost is null ? FormatHeader.Describe(backup, HeapLayout.Rules) : Lost(backupLost);
            string both = Invariant($"primary (offset {offset}): {primaryState}; backup (offset {offset + HeapLayout.BackupOffset}): {backupState}");
            if (primaryLost is not null && backupLost is not null)
            {
                sink.Report(HeapField.MediaError, PoolProblemSeverity.Error, primaryLost.Offset, "neither copy of the heap header can be read: " + both, primaryLost);
            }
            else if ((primaryLost is not null || !FormatHeader.HasSignature(primary, HeapLayout.Rules))
                && (backupLost is not null || !FormatHeader.HasSignature(backup, HeapLayout.Rules)))
            {
                sink.Report(HeapField.Signature, PoolProblemSeverity.Error, offset, "no transactional heap here: neither header copy has the signature \"DPTXHEAP\" (" + both + ")");
            }
            else
            {
                sink.Report(HeapField.Checksum, PoolProblemSeverity.Error, offset + HeapLayout.ChecksumOffset, "no intact copy of the heap header: " + both);
            }
            return null;
        }
        byte[] chosen = primaryChosen ? primary : backup;
        long region = length ?? HeapLayout.RecordedRegionLength(chosen);
        if (length is null && FormatHeader.Major(chosen) == HeapLayout.Major
            && (region < HeapLayout.HeaderBlock || region % 64 != 0 || region > mapping.Length - offset))
        {
            sink.Report(HeapField.Length, PoolProblemSeverity.Error, offset + HeapLayout.RegionLengthOffset, Invariant(
                $"the heap's region length {region} is not a multiple of 64 from {HeapLayout.HeaderBlock} bytes up that fits in the mapping ({mapping.Length - offset} bytes after {offset})"));
            return null;
        }
        if (HeapLayout.Validate(chosen, region, offset, sink) is not HeapLayout layout)
        {
            return null;
        }

        // The copies, once the version is known (an older format has no backup copy to speak of). A copy
        // lost to poison is never written over (a store there could end the process on every open).
        var scan = new HeapScan(layout);
        if (primaryLost is not null || backupLost is not null)
        {
            PmemMediaErrorException lost = (primaryLost ?? backupLost)!;
            sink.Report(HeapField.MediaError, PoolProblemSeverity.ReadOnly, lost.Offset, Invariant(
                $"the {(primaryLost is not null ? "primary" : "backup")} heap header (offset {(primaryLost is not null ? offset : offset + HeapLayout.BackupOffset)}) {Lost(lost)}: the heap opens read-only from the other copy, and the lost one is not written over"));
        }
        else if (repair != PoolHeaderRepair.None)
        {
            bool primaryBad = repair == PoolHeaderRepair.PrimaryRestoredFromBackup;
            long at = primaryBad ? offset : offset + HeapLayout.BackupOffset;
            sink.Report(HeapField.Checksum, PoolProblemSeverity.Repairable, at + HeapLayout.ChecksumOffset, Invariant(
                $"the {(primaryBad ? "primary" : "backup")} heap header (offset {at}): {FormatHeader.Describe(primaryBad ? primary : backup, HeapLayout.Rules)}; a writable open restores it from the {(primaryBad ? "backup" : "primary")}"));
            scan.HeaderRepair = repair;
        }

        byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(layout.LaneLogSize, layout.ObjectSize));
        byte[] data = ArrayPool<byte>.Shared.Rent(Math.Max(layout.LaneLogSize, layout.ObjectSize));
        try
        {
            Span<byte> line = stackalloc byte[HeapLayout.LaneHeader];
            for (int lane = 0; lane < layout.LaneCount; lane++)
            {
                ExamineLane(mapping, offset, layout, lane, line, buffer, data, scan, sink);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            ArrayPool<byte>.Shared.Return(data);
        }

        byte[] map = new byte[layout.ObjectCount];
        if (MediaRead.TryCopy(mapping, offset + layout.MapOffset, map) is PmemMediaErrorException mapLost)
        {
            sink.Report(HeapField.MediaError, PoolProblemSeverity.ReadOnly, mapLost.Offset, Invariant(
                $"the allocation map (offset {offset + layout.MapOffset}) {Lost(mapLost)}: which objects are free is unknown; the heap opens read-only"));
            return scan;
        }
        int first = map.AsSpan().IndexOfAnyExcept((byte)0, (byte)1);
        if (first >= 0)
        {
            int bad = map.Length - map.AsSpan().Count((byte)0) - map.AsSpan().Count((byte)1);
            sink.Report(HeapField.ObjectMap, PoolProblemSeverity.Error, offset + layout.MapOffset + first, Invariant(
                $"the allocation map byte of object {first} is {map[first]}, neither 0 (free) nor 1 (allocated){(bad > 1 ? $" ({bad} such bytes)" : "")}"));
        }
        scan.Map = map;
        return scan;
    }

    /// <summary>
    /// Decides what recovery does with one lane (reads only). The word is written only on abort, on
    /// recovery, when the lane's undo path settles its previous redo commit, and when another lane
    /// settles a commit, so it may lag; the logs and the two undo records say the rest. Let top be
    /// the highest generation with evidence on the media (a verifying first entry of a log, or a
    /// verifying undo record): a transaction writes into its log only after the one before it returned,
    /// so every generation below top finished.
    /// <list type="number">
    /// <item>Replay: for top - 1 and then top, each above the word, whose log (the one of its parity)
    /// holds a whole redo commit (redo entries that verify with the generation, then a commit entry
    /// that verifies, counts them and carries the digest of their checksums and of the objects the
    /// commit allocates, <see cref="RedoObjectsHash"/>), the redo entries are written home in log order. Replaying is idempotent. Top - 1 is
    /// replayed too because top's fence, which made top - 1's home bytes durable, may not have
    /// completed even though top's record reached the media. Nothing else can have changed those bytes
    /// since: another lane settles (raises the word) before it touches them, and the lane's own undo
    /// path raises the word past top - 1 (after a fence) before it changes anything in place.</item>
    /// <item>Undo: if top has undo entries (verifying, in log order; its redo entries, if any, are
    /// inert), top is an undo generation: if its record is an undo record that verifies for top,
    /// counts as many undo entries as the log holds and its data hash matches the media, top committed
    /// and nothing is rolled back; otherwise its undo entries are written back, after the replays
    /// (their snapshots were taken after top - 1 was applied, so they hold its bytes).</item>
    /// </list>
    /// The generation to publish as finished is max(word, top): after recovery every commit is applied.
    /// </summary>
    private static void ExamineLane(DaxMapping mapping, long offset, HeapLayout layout, int lane, Span<byte> line, byte[] buffer, byte[] data, HeapScan scan, IHeapProblemSink sink)
    {
        long lineAt = offset + layout.LanesOffset + lane * layout.LaneStride;
        if (MediaRead.TryCopy(mapping, lineAt, line) is PmemMediaErrorException lineLost)
        {
            sink.Report(HeapField.MediaError, PoolProblemSeverity.ReadOnly, lineLost.Offset, Invariant(
                $"lane {lane}: its header (generation word and commit records, offset {lineAt}) {Lost(lineLost)}: whether its last transaction finished is unknown; the heap opens read-only and nothing is rolled back"));
            return;
        }
        ulong raw = BinaryPrimitives.ReadUInt64LittleEndian(line);
        if (!LaneWord.TryDecode(raw, out ulong word) || word >= LaneWord.MaxGeneration - 1)
        {
            sink.Report(HeapField.LaneGeneration, PoolProblemSeverity.Error, lineAt, Invariant(
                $"the generation word of lane {lane} (0x{raw:x16}) does not verify: it is damaged, and recovery refuses the heap"));
            return;
        }
        scan.Generations[lane] = word;
        scan.Resolved[lane] = word;
        long seed = Lane.ChecksumSeed(lane);
        Span<ulong> recorded = stackalloc ulong[2];
        Span<int> counts = stackalloc int[2];
        Span<ulong> hashes = stackalloc ulong[2];
        Span<ulong> firsts = stackalloc ulong[2];
        ulong top = 0;
        for (int h = 0; h < 2; h++)
        {
            if (CommitRecord.TryRead(line.Slice(h * HeapLayout.LaneLine, HeapLayout.LaneLine), seed, out ulong generation, out int entries, out EntryKind kind, out ulong hash)
                && kind == EntryKind.Undo && (int)(generation & 1) == h && generation < LaneWord.MaxGeneration - 1)
            {
                recorded[h] = generation;
                counts[h] = entries;
                hashes[h] = hash;
                top = Math.Max(top, generation);
            }
        }
        long logs = lineAt + HeapLayout.LaneHeader;
        long half = layout.LaneLogSize;
        for (int h = 0; h < 2; h++)
        {
            switch (TryReadEntry(mapping, logs + h * half, half, seed, buffer, out ulong generation, out PmemMediaErrorException? lost))
            {
                case true when (int)(generation & 1) == h && generation < LaneWord.MaxGeneration - 1:
                    firsts[h] = generation;
                    top = Math.Max(top, generation);
                    break;
                case null:
                    sink.Report(HeapField.MediaError, PoolProblemSeverity.ReadOnly, lost!.Offset, Invariant(
                        $"lane {lane}: the first entry of its {(h == 0 ? "even" : "odd")} log (offset {logs + h * half}) {Lost(lost)}: whether a transaction is in flight there is unknown; the heap opens read-only and nothing is rolled back"));
                    return;
            }
        }
        if (top <= word)
        {
            return; // everything with evidence on the media finished and is applied
        }
        int start = scan.Rollbacks.Count;
        for (ulong g = top - 1; g <= top; g++)
        {
            int h = (int)(g & 1);
            if (g <= word || firsts[h] != g)
            {
                continue;
            }
            int before = scan.Rollbacks.Count;
            switch (ScanRedo(mapping, offset, layout, lane, g, buffer, scan.Rollbacks, sink))
            {
                case true:
                    scan.CommitsReplayed[lane]++;
                    scan.ReplayEntries[lane] += scan.Rollbacks.Count - before;
                    break;
                case false:
                    scan.Rollbacks.RemoveRange(before, scan.Rollbacks.Count - before);
                    break;
                default:
                    scan.Rollbacks.RemoveRange(start, scan.Rollbacks.Count - start);
                    scan.CommitsReplayed[lane] = 0;
                    scan.ReplayEntries[lane] = 0;
                    return;
            }
        }
        var undo = new List<UndoEntryRef>();
        if (!ScanEntries(mapping, offset, layout, lane, top, buffer, undo, sink))
        {
            scan.Rollbacks.RemoveRange(start, scan.Rollbacks.Count - start);
            scan.CommitsReplayed[lane] = 0;
            scan.ReplayEntries[lane] = 0;
            return;
        }
        scan.Resolved[lane] = top;
        if (undo.Count == 0)
        {
            return;
        }
        int t = (int)(top & 1);
        if (recorded[t] == top && counts[t] == undo.Count)
        {
            ulong? media = DataHash(mapping, offset, layout, lane, undo, 0, undo.Count, buffer, data, sink);
            if (media is null)
            {
                scan.Rollbacks.RemoveRange(start, scan.Rollbacks.Count - start);
                scan.CommitsReplayed[lane] = 0;
                scan.ReplayEntries[lane] = 0;
                scan.Resolved[lane] = word;
                return;
            }
            if (media == hashes[t])
            {
                return;
            }
        }
        scan.PendingEntries[lane] = undo.Count;
        foreach (UndoEntryRef entry in undo)
        {
            scan.PendingBytes[lane] += entry.Length;
        }
        scan.Rollbacks.AddRange(undo);
    }

    /// <summary>
    /// The redo entries of generation <paramref name="generation"/>'s log, added to <paramref name="writes"/>,
    /// when they make a whole redo commit: true when every entry from the log's start verifies (checksum,
    /// generation, kind redo) up to a commit entry of the generation that verifies, counts them and
    /// carries the digest of their checksums; false when not (the commit did not complete, or the log
    /// holds an undo transaction: nothing of it is replayed); null (after reporting) when an entry cannot
    /// be read, or verifies but names a range outside the transactional area.
    /// </summary>
    private static bool? ScanRedo(DaxMapping mapping, long offset, HeapLayout layout, int lane, ulong generation, byte[] buffer, List<UndoEntryRef> writes, IHeapProblemSink sink)
    {
        long log = LogStart(offset, layout, lane, generation);
        long capacity = layout.LaneLogSize;
        long seed = Lane.ChecksumSeed(lane);
        ulong chained = Lane.DigestSeed(lane);
        uint count = 0;
        // The last value each allocation map byte gets in this commit: 1 for the objects it allocates.
        var mapBytes = new SortedDictionary<long, byte>();
        for (long position = 0; position + Lane.EntryHeader <= capacity;)
        {
            PmemMediaErrorException? lost = MediaRead.TryCopy(mapping, log + position, buffer.AsSpan(0, Lane.EntryHeader));
            if (lost is null)
            {
                if (BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(8)) != generation)
                {
                    return false;
                }
                uint kind = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(28));
                if (kind == (uint)EntryKind.Commit)
                {
                    if (XxHash3.HashToUInt64(buffer.AsSpan(8, Lane.EntryHeader - 8), seed) != BinaryPrimitives.ReadUInt64LittleEndian(buffer)
                        || BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(24)) != count)
                    {
                        return false;
                    }
                    ulong recorded = BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(16));
                    switch (RedoObjectsHash(mapping, offset, layout, seed, mapBytes, buffer, out PmemMediaErrorException? objectLost))
                    {
                        case ulong objects:
                            chained = Lane.MixDigest(chained, objects);
                            break;
                        case null when objectLost is not null:
                            sink.Report(HeapField.MediaError, PoolProblemSeverity.ReadOnly, objectLost.Offset, Invariant(
                                $"lane {lane}: an object the redo commit of generation {generation} allocates {Lost(objectLost)}: whether the commit is whole is unknown; the heap opens read-only and nothing is replayed"));
                            return null;
                    }
                    return recorded == chained;
                }
                uint length = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(24));
                if (kind != (uint)EntryKind.Redo || length == 0 || length > capacity - position - Lane.EntryHeader)
                {
                    return false;
                }
                lost = MediaRead.TryCopy(mapping, log + position + Lane.EntryHeader, buffer.AsSpan(Lane.EntryHeader, (int)length));
                if (lost is null)
                {
                    ulong checksum = BinaryPrimitives.ReadUInt64LittleEndian(buffer);
                    if (XxHash3.HashToUInt64(buffer.AsSpan(8, Lane.EntryHeader - 8 + (int)length), seed) != checksum)
                    {
                        return false;
                    }
                    chained = Lane.MixDigest(chained, checksum);
                    count++;
                    long target = BinaryPrimitives.ReadInt64LittleEndian(buffer.AsSpan(16));
                    if (target < layout.RootOffset || target > layout.ObjectsEnd - length)
                    {
                        sink.Report(HeapField.UndoEntry, PoolProblemSeverity.Error, log + position, Invariant(
                            $"a redo entry of lane {lane} verifies but names [0x{target:x}, +{length}) relative to the heap, outside its transactional area [0x{layout.RootOffset:x}, 0x{layout.ObjectsEnd:x}): recovery refuses the heap"));
                        return null;
                    }
                    writes.Add(new UndoEntryRef(lane, log + position, target, (int)length, Redo: true));
                    for (long m = Math.Max(target, layout.MapOffset); m < Math.Min(target + length, layout.MapOffset + layout.ObjectCount); m++)
                    {
                        mapBytes[m - layout.MapOffset] = buffer[Lane.EntryHeader + (int)(m - target)];
                    }
                    position += Lane.EntryHeader + ((length + 7) & ~7L);
                    continue;
                }
            }
            sink.Report(HeapField.MediaError, PoolProblemSeverity.ReadOnly, lost.Offset, Invariant(
                $"lane {lane}: the entry at offset {log + position} of the redo commit of generation {generation} {Lost(lost)}: whether the commit is whole is unknown; the heap opens read-only and nothing is replayed"));
            return null;
        }
        return false;
    }

    /// <summary>
    /// The rule a redo commit's digest ends with when it allocates objects (the commit computes it
    /// before its fence, from the objects it wrote in place): XxHash3, seeded by the lane, of the
    /// contents of every object whose allocation map byte the commit's entries leave at 1, in ascending
    /// object order, read poison-safe. Null when there is none (or, with <paramref name="lost"/> set,
    /// when one cannot be read).
    /// </summary>
    internal static ulong? RedoObjectsHash(DaxMapping mapping, long offset, HeapLayout layout, long seed, SortedDictionary<long, byte> mapBytes, byte[] buffer, out PmemMediaErrorException? lost)
    {
        lost = null;
        XxHash3? hasher = null;
        foreach ((long index, byte value) in mapBytes)
        {
            if (value != 1)
            {
                continue;
            }
            hasher ??= new XxHash3(seed);
            if ((lost = MediaRead.TryCopy(mapping, offset + layout.ObjectsOffset + index * layout.ObjectSize, buffer.AsSpan(0, layout.ObjectSize))) is not null)
            {
                return null;
            }
            hasher.Append(buffer.AsSpan(0, layout.ObjectSize));
        }
        return hasher?.GetCurrentHashAsUInt64();
    }

    // Whether the undo entry at the start of a lane's log verifies (any generation), and its generation; null when it cannot be read.
    private static bool? TryReadEntry(DaxMapping mapping, long log, long capacity, long seed, byte[] buffer, out ulong generation, out PmemMediaErrorException? lost)
    {
        generation = 0;
        if ((lost = MediaRead.TryCopy(mapping, log, buffer.AsSpan(0, Lane.EntryHeader))) is not null)
        {
            return null;
        }
        generation = BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(8));
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(24));
        if (length == 0 || length > capacity - Lane.EntryHeader)
        {
            return false;
        }
        if ((lost = MediaRead.TryCopy(mapping, log + Lane.EntryHeader, buffer.AsSpan(Lane.EntryHeader, (int)length))) is not null)
        {
            return null;
        }
        return XxHash3.HashToUInt64(buffer.AsSpan(8, Lane.EntryHeader - 8 + (int)length), seed) == BinaryPrimitives.ReadUInt64LittleEndian(buffer);
    }

    // The verified undo entries of one generation, in order; the walk stops at the first entry of
    // another generation, torn or failing its checksum. False (after reporting) when an entry verifies
    // but names a range outside the transactional area, or cannot be read.
    private static bool ScanEntries(DaxMapping mapping, long offset, HeapLayout layout, int lane, ulong generation, byte[] buffer, List<UndoEntryRef> rollbacks, IHeapProblemSink sink)
    {
        long log = LogStart(offset, layout, lane, generation);
        long capacity = layout.LaneLogSize;
        long seed = Lane.ChecksumSeed(lane);
        for (long position = 0; position + Lane.EntryHeader <= capacity;)
        {
            PmemMediaErrorException? lost = MediaRead.TryCopy(mapping, log + position, buffer.AsSpan(0, Lane.EntryHeader));
            if (lost is null)
            {
                if (BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(8)) != generation)
                {
                    return true;
                }
                uint length = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(24));
                if (BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(28)) == (uint)EntryKind.Commit)
                {
                    return true; // the end of a redo commit's entries: no undo entry in this log
                }
                if (length == 0 || length > capacity - position - Lane.EntryHeader)
                {
                    return true; // torn before its drain: its range was never modified
                }
                lost = MediaRead.TryCopy(mapping, log + position + Lane.EntryHeader, buffer.AsSpan(Lane.EntryHeader, (int)length));
                if (lost is null)
                {
                    if (XxHash3.HashToUInt64(buffer.AsSpan(8, Lane.EntryHeader - 8 + (int)length), seed) != BinaryPrimitives.ReadUInt64LittleEndian(buffer))
                    {
                        return true;
                    }
                    long target = BinaryPrimitives.ReadInt64LittleEndian(buffer.AsSpan(16));
                    uint kind = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(28));
                    if (kind > (uint)EntryKind.Redo)
                    {
                        sink.Report(HeapField.UndoEntry, PoolProblemSeverity.Error, log + position, Invariant(
                            $"an entry of lane {lane} verifies but has the unknown kind {kind}: recovery refuses the heap"));
                        return false;
                    }
                    if (target < layout.RootOffset || target > layout.ObjectsEnd - length)
                    {
                        sink.Report(HeapField.UndoEntry, PoolProblemSeverity.Error, log + position, Invariant(
                            $"{(kind == (uint)EntryKind.Undo ? "an undo" : "a redo")} entry of lane {lane} verifies but names [0x{target:x}, +{length}) relative to the heap, outside its transactional area [0x{layout.RootOffset:x}, 0x{layout.ObjectsEnd:x}): recovery refuses the heap"));
                        return false;
                    }
                    if (kind == (uint)EntryKind.Undo)
                    {
                        // Redo entries of an undo generation are inert: its undo entries cover their ranges.
                        rollbacks.Add(new UndoEntryRef(lane, log + position, target, (int)length));
                    }
                    position += Lane.EntryHeader + ((length + 7) & ~7L);
                    continue;
                }
            }
            sink.Report(HeapField.MediaError, PoolProblemSeverity.ReadOnly, lost.Offset, Invariant(
                $"lane {lane}: the undo entry at offset {log + position} of the unfinished transaction of generation {generation} {Lost(lost)}: its snapshot cannot be restored; the heap opens read-only and nothing is rolled back"));
            return false;
        }
        return true;
    }

    /// <summary>
    /// The data hash of a generation's undo entries (<c>rollbacks[start..start+count]</c>) over what the
    /// media holds now, read poison-safe, by the rule the commit hashes with (<see cref="CommitDataHash"/>).
    /// Null (after reporting) when a range cannot be read.
    /// </summary>
    private static ulong? DataHash(DaxMapping mapping, long offset, HeapLayout layout, int lane, List<UndoEntryRef> rollbacks, int start, int count, byte[] old, byte[] now, IHeapProblemSink sink)
    {
        var hasher = new XxHash3(Lane.ChecksumSeed(lane));
        byte[] obj = ArrayPool<byte>.Shared.Rent(layout.ObjectSize);
        try
        {
            var source = new MediaDataHashSource(mapping, now, old, obj);
            for (int i = start; i < start + count; i++)
            {
                (_, long entry, long target, int length, _) = rollbacks[i];
                if (!CommitDataHash.AppendEntry(hasher, ref source, offset, layout, entry, target, length))
                {
                    PmemMediaErrorException lost = source.Lost!;
                    sink.Report(HeapField.MediaError, PoolProblemSeverity.ReadOnly, lost.Offset, Invariant(
                        $"lane {lane}: the data its commit record describes (the entry at offset {entry}, the range [0x{target:x}, +{length}) relative to the heap, or an object it allocates) {Lost(lost)}: whether the transaction committed is unknown; the heap opens read-only and nothing is rolled back"));
                    return null;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(obj);
        }
        return hasher.GetCurrentHashAsUInt64();
    }

    // Recovery's source for the data hash: poison-safe copies, one buffer per slot; the media error that stopped it.
    private struct MediaDataHashSource(DaxMapping mapping, byte[] now, byte[] old, byte[] obj) : IDataHashSource
    {
        public PmemMediaErrorException? Lost { get; private set; }

        public bool TryRead(long offset, int length, DataHashSlot slot, out ReadOnlySpan<byte> bytes)
        {
            Span<byte> buffer = (slot switch { DataHashSlot.Now => now, DataHashSlot.Snapshot => old, _ => obj }).AsSpan(0, length);
            bytes = buffer;
            Lost = MediaRead.TryCopy(mapping, offset, buffer);
            return Lost is null;
        }
    }

    /// <summary>The mapping offset of the log generation <paramref name="generation"/> of <paramref name="lane"/> writes (the one of its parity).</summary>
    private static long LogStart(long offset, HeapLayout layout, int lane, ulong generation) =>
        offset + layout.LanesOffset + lane * layout.LaneStride + HeapLayout.LaneHeader + Lane.HalfOffset(layout, generation);

    private static string Lost(PmemMediaErrorException e) => Invariant(
        $"met {e.Cause} at [0x{e.BadOffset:x}, +0x{e.BadLength:x})");

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
