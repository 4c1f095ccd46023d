using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using DirectPmem.Mapping;
using DirectPmem.Persistence;

namespace DirectPmem.Storage.Transactions;

/// <summary>
/// Failure-atomic redo- and undo-log transactions and a fixed-size object allocator over a region of a
/// <see cref="DaxMapping"/> (libpmemobj's transactions and allocator, for .NET): after a power
/// failure at any instant, each transaction's changes are either all there or none of them.
/// </summary>
/// <remarks>
/// <para><b>Layout</b> (see the format in the project README): a 4 KiB checksummed header, a fixed
/// number of lanes (each a 128-byte header with the generation word and two undo records, and two bounded logs), a root area, an
/// allocation map (one byte per object) and the fixed-size objects. Transactions may modify the
/// root, the objects and nothing else (<see cref="TransactionalAreaOffset"/>,
/// <see cref="TransactionalAreaLength"/>).</para>
/// <para><b>Protocol</b> (heap format 4; the README's transaction section says what a crash leaves
/// at each step). A transaction takes a free lane and the generation g = last finished generation
/// of the lane + 1, and writes into the lane's log for g's parity (a lane has two, so the log of the
/// last commit survives while the next one writes). <b>Redo</b> (<see cref="Transaction.Write"/>):
/// entries with the new bytes are staged in volatile memory; Commit writes them and a commit entry
/// (count, digest of their checksums) into the log, flushes the home bytes of the lane's previous
/// commit and drains once (the commit point), then copies the new bytes home and flushes them without
/// a fence (the lane's next commit, a settle or <see cref="Dispose"/> makes them durable; until then
/// recovery replays the commit, and it replays the lane's last two commits above its word). <b>Undo</b>
/// (spans): declaring a range writes an undo entry (old bytes) and flushes it; the first writable span
/// after a declaration drains first (fence 1); Commit hashes the new contents of the logged ranges
/// (and of the objects it allocates) into the undo record of line g mod 2 of the lane header, flushes
/// the ranges and the record and drains (fence 2). Recovery keeps an undo generation only if its
/// record verifies and the media hashes to it; otherwise it rolls it back from its entries. The lane
/// word is raised lazily: by the lane's undo path before its first in-place change after a redo
/// commit, by another lane that settles a commit before changing its bytes, by Abort and by
/// <see cref="Dispose"/>. Opening the heap replays and rolls back every lane, then publishes the
/// resolved generations: a crash during recovery is recovered again.</para>
/// <para><b>Concurrency.</b> Up to <see cref="LaneCount"/> transactions run at once, one per lane;
/// <see cref="Begin"/> waits (spinning) while every lane is busy. Transactions do not nest. The
/// heap does not lock user data: two transactions that may touch the same bytes must be
/// serialised by the caller (a lock per key, per bucket, per structure). The allocator is safe to
/// use from concurrent transactions: an object a transaction frees becomes available to others
/// only once that transaction has committed.</para>
/// <para><b>Bounded log.</b> Each lane's log holds <see cref="LaneLogSize"/> bytes. A declaration
/// that does not fit is refused with <see cref="TransactionLogFullException"/> before anything is
/// written; nothing spills. The transaction stays usable, and disposing it rolls back what it had
/// declared.</para>
/// <para>The heap does not own the mapping: dispose the mapping after the heap.</para>
/// </remarks>
public sealed class TransactionalHeap : IDisposable
{
    private readonly DaxMapping _mapping;
    private readonly long _base;
    private readonly HeapLayout _layout;
    private readonly Lane[] _lanes;
    private readonly Lock _allocLock = new();
    private readonly int[] _freeStack;
    // Per lane: its last commit while nothing on the media confirms it but its commit record, and what that commit's hash covers.
    private readonly PendingCommits _pending;
    private int _freeCount;
    private int _disposed;

    private TransactionalHeap(DaxMapping mapping, long offset, HeapLayout layout, ulong[] finished, string? readOnlyReason = null)
    {
        ReadOnlyReason = readOnlyReason;
        _mapping = mapping;
        _base = offset;
        _layout = layout;
        _lanes = new Lane[layout.LaneCount];
        for (int i = 0; i < _lanes.Length; i++)
        {
            _lanes[i] = new Lane(this, i, finished[i]);
        }
        _freeStack = new int[layout.ObjectCount];
        _pending = new PendingCommits(layout.LaneCount);
        Diagnostics.StorageCounts.Touch();
    }

    /// <summary>The mapping the heap lives in; read data through it, modify it only through a <see cref="Transaction"/>.</summary>
    public DaxMapping Mapping => _mapping;

    /// <summary>The mapping offset of the heap's region.</summary>
    public long RegionOffset => _base;

    /// <summary>The length of the heap's region.</summary>
    public long RegionLength => _layout.RegionLength;

    /// <summary>The number of lanes: how many transactions can run at once.</summary>
    public int LaneCount => _layout.LaneCount;

    /// <summary>The capacity of each of a lane's two logs in bytes (undo entries, or redo entries and their commit entry).</summary>
    public int LaneLogSize => _layout.LaneLogSize;

    /// <summary>The mapping offset of the root area (zeroed at creation), a multiple of 64.</summary>
    public long RootOffset => _base + _layout.RootOffset;

    /// <summary>The size of the root area in bytes (a multiple of 64).</summary>
    public int RootSize => _layout.RootSize;

    /// <summary>The size of one object in bytes.</summary>
    public int ObjectSize => _layout.ObjectSize;

    /// <summary>The number of objects.</summary>
    public int ObjectCount => _layout.ObjectCount;

    /// <summary>The mapping offset of the first object (object <c>i</c> is at <c>ObjectsOffset + i * ObjectSize</c>).</summary>
    public long ObjectsOffset => _base + _layout.ObjectsOffset;

    /// <summary>The start of the area transactions may modify (the root, the allocation map and the objects).</summary>
    public long TransactionalAreaOffset => _base + _layout.RootOffset;

    /// <summary>The length of the area transactions may modify.</summary>
    public long TransactionalAreaLength => _layout.ObjectsEnd - _layout.RootOffset;

    /// <summary>How many objects are free for allocation now.</summary>
    public int FreeObjectCount
    {
        get
        {
            lock (_allocLock)
            {
                return _freeCount;
            }
        }
    }

    /// <summary>What the open found and rolled back (nothing for a new heap).</summary>
    public HeapRecovery Recovery { get; private set; } = new(0, 0, 0, 0);

    /// <summary>Whether the heap was opened read-only (<see cref="ReadOnlyReason"/> says why): <see cref="Begin"/> refuses, and recovery wrote nothing.</summary>
    public bool IsReadOnly => ReadOnlyReason is not null;

    /// <summary>
    /// Why the heap was opened read-only, or null: a part of it recovery must read could not be read
    /// (poison, a page past the end of a truncated file, or a page the kernel could not provide: a header copy, a lane, an undo entry of an
    /// unfinished transaction, the data a commit record describes, the allocation map). Nothing was
    /// rolled back, so data an unfinished transaction changed may be seen as it left it. Inspect it with
    /// <see cref="PoolInspector.InspectHeap"/>; clear the bad range and open again to recover.
    /// </summary>
    public string? ReadOnlyReason { get; }

    internal DaxMapping MappingInternal => _mapping;

    internal HeapLayout Layout => _layout;

    /// <summary>The pool the heap was made in by <see cref="PoolTransactions"/>, or null: once it is disposed, <see cref="Begin"/> refuses.</summary>
    internal PmemPool? Owner { get; set; }

    internal long Base => _base;

    /// <summary>
    /// Formats a new heap in [<paramref name="offset"/>, <paramref name="offset"/> + <paramref name="length"/>)
    /// of a writable mapping. The header is written last, so a crash during creation leaves a region
    /// that <see cref="Open"/> refuses (no signature) rather than a half-formatted heap.
    /// </summary>
    /// <param name="mapping">A writable mapping; persistent memory for durability (any mapping works for tests).</param>
    /// <param name="offset">The start of the region, a multiple of 64.</param>
    /// <param name="length">The length of the region, a multiple of 64.</param>
    /// <param name="options">The geometry; <see cref="TransactionalHeapOptions.Default"/> when null.</param>
    /// <returns>The new, empty heap.</returns>
    /// <exception cref="ArgumentException">The region is misaligned, outside the mapping, read-only or too small for the options.</exception>
    /// <exception cref="TransactionalHeapExistsException">A valid heap header is at <paramref name="offset"/> and <see cref="TransactionalHeapOptions.ReplaceExisting"/> is not set; nothing was written.</exception>
    public static TransactionalHeap Create(DaxMapping mapping, long offset, long length, TransactionalHeapOptions? options = null)
        => CreateCore(mapping, offset, length, options, replaceExisting: false);

    // replaceExisting: also when the options do not say so (a pool's directory hands out a free range
    // that may still hold a removed heap's bytes; the directory, not the header, says what is live).
    internal static TransactionalHeap CreateCore(DaxMapping mapping, long offset, long length, TransactionalHeapOptions? options, bool replaceExisting)
    {
        CheckRegion(mapping, offset, length);
        options ??= TransactionalHeapOptions.Default;
        HeapLayout layout = HeapLayout.Compute(length, options);
        if (!options.ReplaceExisting && !replaceExisting)
        {
            ThrowIfHeapExists(mapping, offset);
        }
        // Invalidate an old header first, then format, then write the new header.
        mapping.Fill(offset, HeapLayout.HeaderBlock, 0);
        mapping.Fill(offset + layout.LanesOffset, layout.ObjectsOffset - layout.LanesOffset, 0, PmemCopyOptions.NoDrain);
        ulong zero = LaneWord.Encode(0);
        for (int i = 0; i < layout.LaneCount; i++)
        {
            long word = offset + layout.LanesOffset + i * layout.LaneStride;
            mapping.GetRef<ulong>(word) = zero;
            mapping.Flush(word, 8);
        }
        mapping.Drain();
        // The backup copy first, then the primary: a crash before the backup is durable leaves no intact copy.
        Span<byte> header = stackalloc byte[HeapLayout.HeaderLength];
        layout.WriteHeader(header);
        mapping.Write(header, offset + HeapLayout.BackupOffset);
        mapping.Write(header, offset);
        var heap = new TransactionalHeap(mapping, offset, layout, new ulong[layout.LaneCount]);
        heap.RebuildFreeList(mapping.GetReadOnlySpan(offset + layout.MapOffset, layout.ObjectCount));
        return heap;
    }

    /// <summary>
    /// Opens the heap in [<paramref name="offset"/>, <paramref name="offset"/> + <paramref name="length"/>)
    /// and recovers it: every transaction that had not committed is rolled back (see <see cref="Recovery"/>),
    /// and a damaged header copy is restored from the intact one. Everything recovery reads is read
    /// poison-safe and validated (by the routine <see cref="PoolInspector.InspectHeap"/> runs) before
    /// anything is written. When a part recovery needs cannot be read (poison, a page past the end of a
    /// truncated file), nothing is written and the heap opens read-only (<see cref="ReadOnlyReason"/>).
    /// </summary>
    /// <param name="mapping">The writable mapping the heap was created in.</param>
    /// <param name="offset">The start of the region, as at creation.</param>
    /// <param name="length">The length of the region, as at creation.</param>
    /// <returns>The recovered heap.</returns>
    /// <exception cref="ArgumentException">The region is misaligned, outside the mapping or read-only.</exception>
    /// <exception cref="TransactionalHeapFormatException">
    /// The header (both copies), a lane's generation word, a verified undo entry or the allocation map is
    /// invalid, the heap was written by format 1 or 2, or neither header copy can be read;
    /// <see cref="TransactionalHeapFormatException.Field"/> says which. Nothing was written.
    /// </exception>
    public static TransactionalHeap Open(DaxMapping mapping, long offset, long length)
    {
        CheckRegion(mapping, offset, length);
        var sink = new ThrowingHeapSink();
        // The throwing sink ends Examine at the first error: a scan that returns has none.
        HeapScan scan = HeapValidation.Examine(mapping, offset, length, sink)!;
        HeapLayout layout = scan.Layout;
        var finished = new ulong[layout.LaneCount];
        if (sink.ReadOnlyReason is not null)
        {
            // Something recovery must read could not be read: write nothing (no rollback, no header repair, no word).
            for (int lane = 0; lane < finished.Length; lane++)
            {
                finished[lane] = scan.Generations[lane] ?? 0;
            }
            var readOnly = new TransactionalHeap(mapping, offset, layout, finished, sink.ReadOnlyReason);
            int allocatedNow = scan.Map is null ? 0 : readOnly.RebuildFreeList(scan.Map);
            readOnly.Recovery = new HeapRecovery(0, 0, 0, allocatedNow) { HeaderRepair = PoolHeaderRepair.None };
            return readOnly;
        }

        // Everything read has been validated: repair a damaged header copy, roll back, make it durable, then close each resolved generation.
        if (scan.HeaderRepair != PoolHeaderRepair.None)
        {
            bool fromBackup = scan.HeaderRepair == PoolHeaderRepair.PrimaryRestoredFromBackup;
            Span<byte> header = stackalloc byte[HeapLayout.HeaderLength];
            layout.WriteHeader(header);
            mapping.Write(header, fromBackup ? offset : offset + HeapLayout.BackupOffset);
        }
        long bytes = 0;
        int restored = 0;
        if (scan.Rollbacks.Count > 0)
        {
            // Each lane's replays (older generation first), then its rollbacks: lanes never overlap
            // (a lane settles another before touching its bytes), so lane order does not matter.
            byte[] payload = new byte[layout.LaneLogSize];
            foreach ((int _, long entry, long target, int entryLength, bool redo) in scan.Rollbacks)
            {
                // Read once more, poison-safe: a line gone bad since the scan is a media error, not a crash.
                MediaRead.Copy(mapping, entry + Lane.EntryHeader, payload.AsSpan(0, entryLength));
                mapping.Write(payload.AsSpan(0, entryLength), offset + target, PmemCopyOptions.NoDrain);
                if (!redo)
                {
                    bytes += entryLength;
                    restored++;
                }
            }
            mapping.Drain();
        }
        int lanesRolledBack = 0;
        for (int lane = 0; lane < layout.LaneCount; lane++)
        {
            ulong word = scan.Generations[lane]!.Value;
            finished[lane] = scan.Resolved[lane];
            if (finished[lane] != word)
            {
                mapping.Publish(offset + layout.LanesOffset + lane * layout.LaneStride, LaneWord.Encode(finished[lane]));
            }
            lanesRolledBack += scan.PendingEntries[lane] > 0 ? 1 : 0;
        }
        var heap = new TransactionalHeap(mapping, offset, layout, finished);
        byte[] map = scan.Map!;
        if (scan.Rollbacks.Count > 0)
        {
            MediaRead.Copy(mapping, offset + layout.MapOffset, map); // the rolled-back allocation bytes included
        }
        int allocated = heap.RebuildFreeList(map);
        heap.Recovery = new HeapRecovery(lanesRolledBack, restored, bytes, allocated)
        {
            HeaderRepair = scan.HeaderRepair,
            CommitsReplayed = scan.CommitsReplayed.Sum(),
            EntriesReplayed = scan.ReplayEntries.Sum(),
        };
        return heap;
    }

    /// <summary>
    /// Begins a transaction on a free lane (waiting while all are busy). Use it in a <c>using</c>
    /// statement: disposing it without <see cref="Transaction.Commit"/>, including when an exception
    /// leaves the block, rolls it back.
    /// </summary>
    /// <returns>The transaction, a small handle that allocates nothing.</returns>
    /// <exception cref="ObjectDisposedException">The heap, its mapping or the pool it was made in (<see cref="PoolTransactions"/>) has been disposed; the exception names which.</exception>
    /// <exception cref="InvalidOperationException">The heap is open read-only (<see cref="ReadOnlyReason"/>).</exception>
    public Transaction Begin()
    {
        Owner?.ThrowIfDisposed();
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0 || _mapping.IsDisposed, this);
        if (ReadOnlyReason is not null)
        {
            throw new InvalidOperationException("The transactional heap is open read-only: " + ReadOnlyReason);
        }
        Lane lane = AcquireLane();
        return new Transaction(lane, lane.Start());
    }

    /// <summary>Whether the object at <paramref name="objectOffset"/> is allocated (by a committed transaction).</summary>
    /// <param name="objectOffset">The mapping offset of an object.</param>
    /// <returns>Whether its allocation map byte says allocated.</returns>
    /// <exception cref="ArgumentException">The offset is not the start of an object.</exception>
    public bool IsAllocated(long objectOffset) =>
        _mapping.GetReadOnlyRef<byte>(_base + _layout.MapOffset + ObjectIndex(objectOffset)) == 1;

    /// <summary>The mapping offset of object <paramref name="index"/>.</summary>
    /// <param name="index">0 to <see cref="ObjectCount"/> - 1.</param>
    /// <returns>Its mapping offset.</returns>
    public long GetObjectOffset(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, _layout.ObjectCount);
        return ObjectsOffset + (long)index * _layout.ObjectSize;
    }

    /// <summary>
    /// Stops new transactions and, while the mapping is still open, settles every lane's last commit
    /// (the home bytes of a redo commit made durable, then the lane word raised to it, so that the heap
    /// at rest no longer depends on the commit records and logs); the mapping stays open (it belongs to the caller).
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0 || _mapping.IsDisposed)
        {
            return;
        }
        // Inside the pool's read guard: a pool disposed first (or racing) leaves the words as they are.
        PmemPool? pool = Owner;
        if (pool is not null && !pool.TryEnterRead())
        {
            return;
        }
        try
        {
            Settle(0, lane => _pending.Generation(lane) != 0);
        }
        finally
        {
            pool?.ExitRead();
        }
    }

    internal int ObjectIndex(long objectOffset)
    {
        long relative = objectOffset - ObjectsOffset;
        if (relative < 0 || relative >= (long)_layout.ObjectCount * _layout.ObjectSize || relative % _layout.ObjectSize != 0)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"Offset 0x{objectOffset:x} is not the start of an object (objects of {_layout.ObjectSize} bytes from 0x{ObjectsOffset:x}, {_layout.ObjectCount} of them)."), nameof(objectOffset));
        }
        return (int)(relative / _layout.ObjectSize);
    }

    internal void CheckTransactional(long offset, long length)
    {
        long start = TransactionalAreaOffset;
        if (offset < start || length < 0 || offset > start + TransactionalAreaLength - length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), string.Create(CultureInfo.InvariantCulture,
                $"The range [0x{offset:x}, +{length}) is outside the heap's transactional area [0x{start:x}, 0x{start + TransactionalAreaLength:x}) (root, allocation map and objects)."));
        }
    }

    internal int PopFree()
    {
        lock (_allocLock)
        {
            if (_freeCount == 0)
            {
                throw new HeapFullException(_layout.ObjectCount, _layout.ObjectSize);
            }
            return _freeStack[--_freeCount];
        }
    }

    internal void PushFree(ReadOnlySpan<int> indices)
    {
        if (indices.IsEmpty)
        {
            return;
        }
        lock (_allocLock)
        {
            foreach (int index in indices)
            {
                _freeStack[_freeCount++] = index;
            }
        }
    }

    /// <summary>Test hook for the sweeps' negative control: snapshots are flushed but not drained before in-place changes.</summary>
    internal bool SkipSnapshotDrainForTest { get; set; }

    /// <summary>Test hook for the sweeps' negative control: no other lane's commit is confirmed before an in-place change.</summary>
    internal bool SkipCrossLaneConfirmForTest { get; set; }

    /// <summary>Per lane, its unconfirmed commit and that commit's footprint.</summary>
    internal PendingCommits Pending => _pending;

    /// <summary>Test hook for the sweeps' negative control: the home bytes of redo commits are never flushed (neither by the apply nor by the next commit).</summary>
    internal bool SkipHomeFlushForTest { get; set; }

    /// <summary>
    /// Settles every other lane whose pending commit (<see cref="PendingCommits"/>) covers a byte of
    /// <paramref name="ranges"/>: flushes that commit's footprint (the home
    /// bytes of a redo commit, perhaps applied on another core), drains, raises the lane's word to the
    /// generation read with the footprint, flushes and drains again. So recovery neither replays that
    /// commit over the caller's changes nor judges it by a hash the caller's changes would break, and
    /// two replayable commits never overlap (recovery needs no order between lanes). Lanes whose
    /// pending commits cover none of those bytes are only read; the common case costs no fence.
    /// </summary>
    internal void SettleOverlappingLanes(int self, RangeSet ranges)
    {
        if (SkipCrossLaneConfirmForTest)
        {
            return;
        }
        for (int i = 0; i < _layout.LaneCount; i++)
        {
            if (i != self && _pending.Overlapping(i, ranges) != 0)
            {
                Settle(i, lane => lane != self && _pending.Overlapping(lane, ranges) != 0);
                return;
            }
        }
    }

    // The rare path: allocates (a footprint set, the generations read).
    private void Settle(int first, Func<int, bool> select)
    {
        var footprint = new RangeSet();
        long[] generations = new long[_layout.LaneCount];
        bool any = false;
        for (int i = first; i < _layout.LaneCount; i++)
        {
            if (!select(i))
            {
                continue;
            }
            var spin = default(SpinWait);
            while (true)
            {
                long generation = _pending.Generation(i);
                footprint.Clear();
                if (generation == 0)
                {
                    break;
                }
                if (_pending.TryCopyFootprint(i, generation, footprint))
                {
                    for (int k = 0; k < footprint.Count; k++)
                    {
                        _mapping.Flush(footprint.StartAt(k), footprint.EndAt(k) - footprint.StartAt(k));
                    }
                    generations[i] = generation;
                    any = true;
                    break;
                }
                spin.SpinOnce();
            }
        }
        if (!any)
        {
            return;
        }
        // The home bytes first: a word that reached the media before them would lose the commit.
        _mapping.Drain();
        bool raised = false;
        for (int i = 0; i < generations.Length; i++)
        {
            if (generations[i] != 0)
            {
                raised |= RaiseLaneWord(i, (ulong)generations[i]);
            }
        }
        if (raised)
        {
            _mapping.Drain();
        }
    }

    /// <summary>
    /// Sets a lane's word to <paramref name="generation"/> unless it already says as much or more
    /// (a compare-and-swap: another lane may raise it at the same time); flushes it, without draining.
    /// Returns whether the word changed.
    /// </summary>
    internal bool RaiseLaneWord(int lane, ulong generation)
    {
        ref ulong word = ref _mapping.GetRef<ulong>(_base + _layout.LanesOffset + lane * _layout.LaneStride);
        ulong current = Volatile.Read(ref word);
        while (LaneWord.TryDecode(current, out ulong now) && now < generation)
        {
            ulong seen = Interlocked.CompareExchange(ref word, LaneWord.Encode(generation), current);
            if (seen == current)
            {
                _mapping.Flush(_base + _layout.LanesOffset + lane * _layout.LaneStride, 8);
                return true;
            }
            current = seen;
        }
        return false;
    }

    private int RebuildFreeList(ReadOnlySpan<byte> map)
    {
        int allocated = 0;
        _freeCount = 0;
        // Pushed from the end so that allocation hands out the lowest free index first.
        for (int i = map.Length - 1; i >= 0; i--)
        {
            switch (map[i])
            {
                case 0:
                    _freeStack[_freeCount++] = i;
                    break;
                case 1:
                    allocated++;
                    break;
                default:
                    throw new TransactionalHeapFormatException(HeapField.ObjectMap, _base + _layout.MapOffset + i, string.Create(CultureInfo.InvariantCulture,
                        $"The allocation map byte of object {i} is {map[i]}, neither 0 (free) nor 1 (allocated)."));
            }
        }
        return allocated;
    }

    private Lane AcquireLane()
    {
        Lane[] lanes = _lanes;
        int start = (int)((uint)Environment.CurrentManagedThreadId % (uint)lanes.Length);
        var spin = default(SpinWait);
        while (true)
        {
            for (int i = 0; i < lanes.Length; i++)
            {
                Lane lane = lanes[(start + i) % lanes.Length];
                if (Interlocked.CompareExchange(ref lane.Busy, 1, 0) == 0)
                {
                    return lane;
                }
            }
            spin.SpinOnce();
        }
    }

    // A header copy whose signature and checksum verify (any format version) is a live heap: Create refuses to wipe it.
    // Read poison-safe: a copy that cannot be read says nothing (the other may).
    private static void ThrowIfHeapExists(DaxMapping mapping, long offset)
    {
        Span<byte> header = stackalloc byte[HeapLayout.HeaderLength];
        foreach (long at in (ReadOnlySpan<long>)[offset, offset + HeapLayout.BackupOffset])
        {
            if (at + HeapLayout.HeaderLength > mapping.Length || MediaRead.TryCopy(mapping, at, header) is not null || !FormatHeader.IsIntact(header, HeapLayout.Rules))
            {
                continue;
            }
            int major = FormatHeader.Major(header);
            // Format 2 and earlier kept the region length at 16 and the geometry after it; formats 3 and 4 after the shared prefix.
            int at0 = major >= 3 ? HeapLayout.RegionLengthOffset : 16;
            long region = BinaryPrimitives.ReadInt64LittleEndian(header[at0..]);
            int lanes = BinaryPrimitives.ReadInt32LittleEndian(header[(at0 + 8)..]);
            int objectSize = BinaryPrimitives.ReadInt32LittleEndian(header[(at0 + 20)..]);
            long objects = BinaryPrimitives.ReadInt64LittleEndian(header[(at0 + 24)..]);
            throw new TransactionalHeapExistsException(offset, major, region, string.Create(CultureInfo.InvariantCulture,
                $"TransactionalHeap.Create: a transactional heap (format {major}, a region of {region} bytes, {lanes} lanes, {objects} objects of {objectSize} bytes) is at mapping offset 0x{offset:x}; creating would wipe it. Open it with TransactionalHeap.Open, or set TransactionalHeapOptions.ReplaceExisting to replace it."));
        }
    }

    private static void CheckRegion(DaxMapping mapping, long offset, long length)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        ObjectDisposedException.ThrowIf(mapping.IsDisposed, mapping);
        if (offset < 0 || offset % 64 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset, "The heap's region must start at a non-negative multiple of 64.");
        }
        if (length < HeapLayout.HeaderBlock || length % 64 != 0 || offset > mapping.Length - length)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, string.Create(CultureInfo.InvariantCulture,
                $"The heap's region [0x{offset:x}, +{length}) must be a multiple of 64 bytes, at least {HeapLayout.HeaderBlock}, inside the mapping of {mapping.Length} bytes."));
        }
        if (mapping.IsReadOnly)
        {
            throw new ArgumentException("A transactional heap needs a writable mapping (recovery and transactions write to it).", nameof(mapping));
        }
    }
}
