using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using DirectPmem.Mapping;
using DirectPmem.Persistence;

namespace DirectPmem.Storage.Transactions;

/// <summary>
/// One lane: its generation word, its two bounded logs and the volatile state of the transaction
/// running on it. Entry format (little-endian, 8-byte aligned): checksum u64 (XxHash3, seeded by the
/// lane index, of every byte after it up to the end of the payload) @0, generation u64 @8, target
/// offset relative to the heap region i64 @16, length u32 @24, kind u32 @28 (<see cref="EntryKind"/>:
/// 0 undo, the payload is the range's old bytes; 1 redo, its new bytes), then the payload padded to 8 bytes.
/// </summary>
internal sealed class Lane
{
    public const int EntryHeader = 32;

    private readonly TransactionalHeap _heap;
    private readonly DaxMapping _mapping;
    private readonly long _word;
    private readonly long _logs;
    private readonly int _capacity;
    private long _log;
    private readonly long _mapOffset;
    private readonly long _seed;
    private readonly XxHash3 _hasher;
    private readonly RangeSet _declared = new();
    private readonly RangeSet _fresh = new();
    // The home ranges of this transaction's redo entries, and of the lane's previous commit while it
    // is a redo commit this lane has not settled itself (its home bytes are durable only after the
    // next commit's fence, or after a settle's).
    private RangeSet _redoRanges = new();
    private RangeSet _previousRanges = new();
    private readonly RangeSet _probe = new();
    private int[] _allocated = new int[4];
    private int _allocatedCount;
    private long[] _entryPositions = new long[8];
    private long[] _entryTargets = new long[8];
    private int[] _entryLengths = new int[8];
    // The redo entries, built in volatile memory as Write is called and written to the log only by
    // Commit, in whole lines with non-temporal stores together with the commit entry that ends them
    // (no read-for-ownership of log lines a flush evicted, and one line fewer than a separate record).
    // The apply after the commit fence copies from here too.
    private byte[] _staged = new byte[512];
    private int _stagedUsed;
    private int _redoCount;
    private ulong _redoDigest;
    private int[] _freed = new int[4];
    private int _freedCount;

    private ulong _finished;
    private ulong _generation;
    private ulong _token;
    private bool _active;
    private bool _undo;
    private bool _applyPending;
    private bool _previousPending;
    private int _used;
    private int _entries;
    private bool _drainPending;
    private int _flushed;

    // 0 free, 1 taken by a transaction (Interlocked).
    public int Busy;

    public Lane(TransactionalHeap heap, int index, ulong finished)
    {
        _heap = heap;
        _mapping = heap.MappingInternal;
        Index = index;
        _word = heap.Base + heap.Layout.LanesOffset + index * heap.Layout.LaneStride;
        _logs = _word + HeapLayout.LaneHeader;
        _capacity = heap.Layout.LaneLogSize;
        _log = _logs;
        _mapOffset = heap.Base + heap.Layout.MapOffset;
        _seed = ChecksumSeed(index);
        _hasher = new XxHash3(_seed);
        _finished = finished;
    }

    public int Index { get; }

    public int LogUsed => _undo ? _used : _stagedUsed;

    public static long ChecksumSeed(int lane) => 0x4450_5458 + lane;

    /// <summary>Where generation <paramref name="generation"/>'s entries start, relative to the lane's logs: odd generations use the second of the lane's two logs.</summary>
    public static long HalfOffset(HeapLayout layout, ulong generation) => (long)(generation & 1) * layout.LaneLogSize;

    /// <summary>The first value of a redo record's digest (<see cref="MixDigest"/>) for lane <paramref name="lane"/>.</summary>
    public static ulong DigestSeed(int lane) => 0x5245_444F_0000_0000UL + (ulong)lane;

    /// <summary>
    /// Chains one redo entry's checksum into a redo record's digest (murmur3's 64-bit finaliser of
    /// digest * golden ratio + checksum): the digest of the entries in log order, so entries from
    /// another attempt of the same generation do not match it.
    /// </summary>
    public static ulong MixDigest(ulong digest, ulong checksum)
    {
        ulong x = unchecked((digest * 0x9E37_79B9_7F4A_7C15UL) + checksum);
        x ^= x >> 33;
        x = unchecked(x * 0xFF51_AFD7_ED55_8CCDUL);
        x ^= x >> 33;
        x = unchecked(x * 0xC4CE_B9FE_1A85_EC53UL);
        return x ^ (x >> 33);
    }

    public bool IsCurrent(ulong token) => _active && _token == token;

    public ulong Start()
    {
        if (_finished >= LaneWord.MaxGeneration - 1)
        {
            Volatile.Write(ref Busy, 0);
            throw new InvalidOperationException($"Lane {Index} has used all 2^48 generations.");
        }
        _generation = _finished + 1;
        _log = _logs + HalfOffset(_heap.Layout, _generation);
        _used = 0;
        _flushed = 0;
        _entries = 0;
        _redoCount = 0;
        _stagedUsed = 0;
        _redoDigest = DigestSeed(Index);
        _redoRanges.Clear();
        _undo = false;
        _applyPending = false;
        _drainPending = false;
        _declared.Clear();
        _fresh.Clear();
        _allocatedCount = 0;
        _freedCount = 0;
        _active = true;
        return ++_token;
    }

    public void AddRange(long offset, long length)
    {
        // Inside the pool's read guard: the pool's Dispose waits for this step, or it throws ObjectDisposedException.
        PmemPool? pool = EnterPool();
        try
        {
            _heap.CheckTransactional(offset, length);
            if (length == 0)
            {
                return;
            }
            SwitchToUndo();
            AddRangeCore(offset, length);
        }
        finally
        {
            pool?.ExitRead();
        }
    }

    private void AddRangeCore(long offset, long length)
    {
        long end = offset + length;
        int gaps = _declared.FindGaps(offset, end);
        if (gaps == 0)
        {
            return;
        }
        // The whole declaration must fit before anything is written.
        long required = 0;
        for (int i = 0; i < gaps; i++)
        {
            if (_fresh.Covers(_declared.GapStart(i), _declared.GapEnd(i)))
            {
                continue; // a new object needs no snapshot
            }
            required += EntryHeader + ((_declared.GapEnd(i) - _declared.GapStart(i) + 7) & ~7L);
        }
        if (required > _capacity - _used)
        {
            throw new TransactionLogFullException(Index, _capacity, _used, required);
        }
        for (int i = 0; i < gaps; i++)
        {
            if (!_fresh.Covers(_declared.GapStart(i), _declared.GapEnd(i)))
            {
                WriteEntry(_declared.GapStart(i), (int)(_declared.GapEnd(i) - _declared.GapStart(i)));
            }
        }
        _declared.Add(offset, end);
    }

    /// <summary>
    /// The transaction leaves the redo path for the undo path (the first AddRange, Modify, GetRef, or
    /// GetSpan of a range it wrote): every range its redo entries change gets an undo entry (a
    /// snapshot of the home bytes, which still hold the old contents), and after the snapshot drain
    /// the redo bytes are applied in place (<see cref="DrainSnapshots"/>). From then on the generation
    /// is an undo generation: its commit record is an undo record, so recovery never replays its redo
    /// entries (they are inert), and rolls back or keeps the whole transaction by its undo entries.
    /// </summary>
    private void SwitchToUndo()
    {
        if (_undo)
        {
            return;
        }
        if (_redoCount > 0)
        {
            // All or nothing: the worst case (no range merges) must fit before any entry is written.
            long required = 0;
            for (int i = 0; i < _redoRanges.Count; i++)
            {
                required += EntryHeader + ((_redoRanges.EndAt(i) - _redoRanges.StartAt(i) + 7) & ~7L);
            }
            if (required > _capacity - _used)
            {
                throw new TransactionLogFullException(Index, _capacity, _used, required);
            }
            _undo = true;
            for (int i = 0; i < _redoRanges.Count; i++)
            {
                AddRangeCore(_redoRanges.StartAt(i), _redoRanges.EndAt(i) - _redoRanges.StartAt(i));
            }
            _applyPending = true;
        }
        _undo = true;
    }

    public Span<byte> GetSpan(long offset, int length)
    {
        // Inside the pool's read guard: the pool's Dispose waits for this step, or it throws ObjectDisposedException.
        PmemPool? pool = EnterPool();
        try
        {
            if (length == 0)
            {
                return [];
            }
            if (length > 0)
            {
                // Outside the heap's transactional area is a bad argument, not a missing declaration.
                _heap.CheckTransactional(offset, length);
                if (!_undo && !_declared.Covers(offset, offset + length) && _redoRanges.Overlaps(offset, offset + length))
                {
                    // A span over bytes this transaction wrote with Write: they must show in it, so the
                    // transaction takes the undo path (the ranges written are declared by the switch).
                    SwitchToUndo();
                    AddRangeCore(offset, length);
                }
            }
            if (length < 0 || !_declared.Covers(offset, offset + length))
            {
                throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                    $"[0x{offset:x}, +{length}) was not declared in this transaction: call AddRange (or Allocate) first, so that its old contents are logged."));
            }
            // New objects need no durable snapshot before they are written.
            if (_drainPending && !_fresh.Covers(offset, offset + length))
            {
                DrainSnapshots();
            }
            return _mapping.GetSpan(offset, length);
        }
        finally
        {
            pool?.ExitRead();
        }
    }

    /// <summary>
    /// Changes [offset, +source.Length) through the commit, inside the pool's read guard: a redo entry
    /// (the new bytes, flushed, no fence) while the transaction is on the redo path; in place into an
    /// object allocated in this transaction; on the undo path (after a span), declared and copied in place.
    /// </summary>
    public void Write(long offset, ReadOnlySpan<byte> source)
    {
        PmemPool? pool = EnterPool();
        try
        {
            _heap.CheckTransactional(offset, source.Length);
            if (source.IsEmpty)
            {
                return;
            }
            long end = offset + source.Length;
            if (_fresh.Covers(offset, end))
            {
                source.CopyTo(_mapping.GetSpan(offset, source.Length));
            }
            else if (_undo)
            {
                AddRangeCore(offset, source.Length);
                source.CopyTo(GetSpan(offset, source.Length));
            }
            else if (_fresh.Overlaps(offset, end))
            {
                WriteAroundFresh(offset, source);
            }
            else
            {
                WriteRedo(offset, source);
            }
        }
        finally
        {
            pool?.ExitRead();
        }
    }

    /// <summary>
    /// A redo-path Write that covers part of an object allocated in this transaction: that part is
    /// copied in place at once (in program order with the caller's other writes into the object, and
    /// before the commit hashes the object), the rest goes into redo entries. All or nothing: the
    /// entries must fit before anything is written.
    /// </summary>
    private void WriteAroundFresh(long offset, ReadOnlySpan<byte> source)
    {
        long end = offset + source.Length;
        int gaps = _fresh.FindGaps(offset, end);
        long required = EntryHeader;
        for (int i = 0; i < gaps; i++)
        {
            required += EntryHeader + ((_fresh.GapEnd(i) - _fresh.GapStart(i) + 7) & ~7L);
        }
        if (_stagedUsed + required > _capacity)
        {
            throw new TransactionLogFullException(Index, _capacity, _stagedUsed, required - EntryHeader);
        }
        // Read the gaps before writing anything: FindGaps' results are overwritten by the next call.
        Span<long> bounds = gaps <= 16 ? stackalloc long[2 * gaps] : new long[2 * gaps];
        for (int i = 0; i < gaps; i++)
        {
            bounds[2 * i] = _fresh.GapStart(i);
            bounds[2 * i + 1] = _fresh.GapEnd(i);
        }
        long cursor = offset;
        for (int i = 0; i <= gaps; i++)
        {
            long gapStart = i < gaps ? bounds[2 * i] : end;
            if (cursor < gapStart)
            {
                source[(int)(cursor - offset)..(int)(gapStart - offset)].CopyTo(_mapping.GetSpan(cursor, (int)(gapStart - cursor)));
            }
            if (i < gaps)
            {
                WriteRedo(gapStart, source[(int)(gapStart - offset)..(int)(bounds[2 * i + 1] - offset)]);
                cursor = bounds[2 * i + 1];
            }
        }
    }

    public long Allocate()
    {
        // Inside the pool's read guard: the pool's Dispose waits for this step, or it throws ObjectDisposedException.
        PmemPool? pool = EnterPool();
        try
        {
            int index = _heap.PopFree();
            long offset = _heap.ObjectsOffset + (long)index * _heap.ObjectSize;
            try
            {
                // The object is written in place from now on: a commit of another lane that recovery
                // may still replay over its bytes (one that wrote it, then freed it) is settled first.
                _probe.Clear();
                _probe.Add(offset, offset + _heap.ObjectSize);
                _heap.SettleOverlappingLanes(Index, _probe);
                if (_redoRanges.Overlaps(offset, offset + _heap.ObjectSize))
                {
                    // Bytes of the object were written with Write before it was allocated: their redo
                    // entries would land after the commit hashed the object. The undo path keeps it simple.
                    // The staged bytes are applied now, not at the next drain: the caller writes the new
                    // object in place from here on (no drain before that), and a later apply would put
                    // the bytes written before the allocation back over those writes.
                    SwitchToUndo();
                    if (_applyPending)
                    {
                        DrainSnapshots();
                    }
                }
                if (_undo)
                {
                    AddRangeCore(_mapOffset + index, 1);
                }
                else
                {
                    WriteRedo(_mapOffset + index, [1]);
                }
            }
            catch
            {
                _heap.PushFree([index]);
                throw;
            }
            Append(ref _allocated, ref _allocatedCount, index);
            _fresh.Add(offset, offset + _heap.ObjectSize);
            _declared.Add(offset, offset + _heap.ObjectSize);
            return offset;
        }
        finally
        {
            pool?.ExitRead();
        }
    }

    public void Free(long objectOffset)
    {
        // Inside the pool's read guard: the pool's Dispose waits for this step, or it throws ObjectDisposedException.
        PmemPool? pool = EnterPool();
        try
        {
            int index = _heap.ObjectIndex(objectOffset);
            if (Array.IndexOf(_freed, index, 0, _freedCount) >= 0)
            {
                throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture, $"Object 0x{objectOffset:x} is freed twice in this transaction."));
            }
            bool allocatedHere = Array.IndexOf(_allocated, index, 0, _allocatedCount) >= 0;
            if (!allocatedHere && _mapping.GetReadOnlyRef<byte>(_mapOffset + index) != 1)
            {
                throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture, $"Object 0x{objectOffset:x} is not allocated: it cannot be freed."));
            }
            if (_undo)
            {
                AddRangeCore(_mapOffset + index, 1);
            }
            else
            {
                WriteRedo(_mapOffset + index, [0]);
            }
            Append(ref _freed, ref _freedCount, index);
        }
        finally
        {
            pool?.ExitRead();
        }
    }

    // What a commit costs on the production path, and what a crash leaves at each step (the README's
    // transaction section has the full analysis; TransactionCrashTests and RedoCrashTests sweep it).
    //
    // The redo path (Transaction.Write only, and objects allocated in the transaction): one fence.
    //   Write     the entry {checksum, g, target, length, redo, new bytes} is built in the lane's
    //             volatile staging buffer. Nothing persistent is written. Crash: nothing of g exists.
    //   Commit    the commit entry {checksum, g, digest of the entries' checksums, count, commit} is
    //             appended; entries and commit entry, padded to whole lines, go into log g mod 2 with
    //             non-temporal stores (96 + 32 B = two lines for 64 B); the objects written in place
    //             and the home ranges of the lane's previous commit (applied by the previous Commit,
    //             perhaps on another core, whose CLWBs this core's fence would not drain) are flushed;
    //             ONE fence: the commit point. Crash before it completes: the commit entry counts only
    //             if it and every entry before it verify (checksums, generation, digest), so g is
    //             either wholly replayable or ignored; the previous commit, in the other log, is
    //             replayed too unless the lane word says it is applied.
    //             Then the redo bytes are copied home (cached stores) and flushed, not fenced: home
    //             memory shows the new bytes when Commit returns; the media gets them by the next
    //             commit's fence (or a settle, or the heap's Dispose). Crash after: recovery replays g
    //             (idempotent); it replays at most the lane's last two commits, whose logs the next
    //             commit does not overwrite (it writes the other one).
    // Cost for 1 range of 64 B: two lines written non-temporally, two line flushes (the previous
    // home, the new home) and one fence.
    //
    // The undo path (AddRange, GetSpan, Modify, GetRef): two fences, as in format 3.
    //   AddRange  the undo entry {checksum, g, target, length, undo, old bytes} is written and flushed.
    //   GetSpan   the partial last line is flushed, the lane's previous redo commit is settled (its home
    //             flushed, a fence, the lane word raised to it: a third fence, only when the previous
    //             commit was a redo commit), overlapping commits of other lanes are settled, fence 1.
    //             Crash while the caller writes: g's undo entries verify and its record does not, so
    //             recovery rolls g back.
    //   Commit    data lines and the record line (g, count, undo, data hash; in the lane header's
    //             line g mod 2) flushed, fence 2.
    public void Commit()
    {
        // Inside the pool's read guard: the pool's Dispose waits for this step, or it throws ObjectDisposedException.
        PmemPool? pool = EnterPool();
        try
        {
            if (_undo)
            {
                CommitUndo();
            }
            else if (_redoCount > 0)
            {
                CommitRedo();
            }
            _heap.PushFree(_freed.AsSpan(0, _freedCount));
            Diagnostics.StorageCounts.OnCommit();
            End();
        }
        finally
        {
            pool?.ExitRead();
        }
    }

    private void CommitRedo()
    {
        // A commit of another lane that recovery may still replay, or judge by its hash, over bytes
        // this commit replays is made applied and durable first (Allocate did so for new objects), with
        // fences of its own: the rare shape. So two replayable commits never overlap.
        _heap.SettleOverlappingLanes(Index, _redoRanges);
        // The objects allocated here were written in place and are flushed under the same fence as the
        // commit entry, which may reach the media first: their contents are chained into its digest
        // (HeapValidation.RedoObjectsHash), so recovery replays the commit only if they are on the media too.
        ulong digest = _redoDigest;
        if (_allocatedCount > 0 && HashAllocatedObjects() is ulong objects)
        {
            digest = MixDigest(digest, objects);
        }
        // The entries and the commit entry {checksum, g, digest, count, commit} after them, padded
        // with zeros to a whole line, go into log g mod 2 with non-temporal stores.
        Span<byte> commit = _staged.AsSpan(_stagedUsed, EntryHeader);
        BinaryPrimitives.WriteUInt64LittleEndian(commit[8..], _generation);
        BinaryPrimitives.WriteUInt64LittleEndian(commit[16..], digest);
        BinaryPrimitives.WriteUInt32LittleEndian(commit[24..], (uint)_redoCount);
        BinaryPrimitives.WriteUInt32LittleEndian(commit[28..], (uint)EntryKind.Commit);
        BinaryPrimitives.WriteUInt64LittleEndian(commit, XxHash3.HashToUInt64(commit[8..], _seed));
        int end = _stagedUsed + EntryHeader;
        int lines = (end + 63) & ~63;
        _staged.AsSpan(end, lines - end).Clear();
        _mapping.Write(_staged.AsSpan(0, lines), _log, PmemCopyOptions.NonTemporal | PmemCopyOptions.NoDrain);
        for (int i = 0; i < _fresh.Count; i++)
        {
            _mapping.Flush(_fresh.StartAt(i), _fresh.EndAt(i) - _fresh.StartAt(i));
        }
        if (_previousPending && !_heap.SkipHomeFlushForTest)
        {
            // The previous commit's home bytes: its own flush may have run on another core.
            FlushRanges(_previousRanges);
        }
        // The commit point: entries, commit entry, new objects and the previous commit's home are durable.
        _mapping.Drain();
        ApplyRedo();
        if (!_heap.SkipHomeFlushForTest)
        {
            FlushRanges(_redoRanges);
        }
        // Recovery may judge this commit by the allocated objects' contents until it is settled:
        // another lane must settle it before changing them (they join the footprint; the next
        // commit's re-flush of them is redundant and cheap).
        for (int i = 0; i < _fresh.Count; i++)
        {
            _redoRanges.Add(_fresh.StartAt(i), _fresh.EndAt(i));
        }
        // Recovery may replay this commit and, unless this lane settled it, the previous one:
        // another lane must settle both before it touches their bytes. Published after the apply,
        // so a lane that reads it also sees the home bytes it must flush.
        if (_redoRanges.Count + (_previousPending ? _previousRanges.Count : 0) > PendingCommits.MaxRanges)
        {
            // Too many ranges to publish for another lane to flush: settle this commit now (two
            // fences more, only for transactions of many ranges), so nothing of it is pending.
            if (!_heap.SkipHomeFlushForTest)
            {
                _mapping.Drain();
            }
            _heap.RaiseLaneWord(Index, _generation);
            _mapping.Drain();
            _heap.Pending.Clear(Index);
            _previousPending = false;
        }
        else
        {
            _heap.Pending.Publish(Index, _generation, _redoRanges, _previousPending ? _previousRanges : null);
            (_previousRanges, _redoRanges) = (_redoRanges, _previousRanges);
            _previousPending = true;
        }
        _finished = _generation;
    }

    private void CommitUndo()
    {
        if (_allocatedCount + _freedCount > 0)
        {
            // The map bytes were declared (logged) when allocated or freed; they change only now.
            if (_drainPending)
            {
                DrainSnapshots();
            }
            Span<byte> map = _mapping.GetSpan(_mapOffset, _heap.ObjectCount);
            for (int i = 0; i < _allocatedCount; i++)
            {
                map[_allocated[i]] = 1;
            }
            for (int i = 0; i < _freedCount; i++)
            {
                map[_freed[i]] = 0;
            }
        }
        if (_entries == 0)
        {
            return;
        }
        // A transaction that declared ranges but changed nothing in place has not drained its
        // snapshots yet. Its undo entries must be durable (they confirm the lane's previous commit)
        // before its record can reach the media, and the previous commit must be settled; costs a
        // fence only in that rare shape (TransactionCrashTests.DeclareOnly).
        if (_drainPending || _applyPending)
        {
            DrainSnapshots();
        }
        // The commit record says "this generation committed" only together with the data it
        // hashes, so it needs no fence of its own before it: data and record share one fence.
        // Hashed before the flushes, while the lines are still in the cache (a CLWB may evict).
        _hasher.Reset();
        for (int i = 0; i < _entries; i++)
        {
            CommitRecord.AppendEntry(_hasher, _mapping, _heap.Base, _heap.Layout, _entryPositions[i], _entryTargets[i], _entryLengths[i]);
        }
        ulong hash = _hasher.GetCurrentHashAsUInt64();
        FlushRanges(_declared);
        // Entries declared after the last snapshot drain (nothing was changed in place under
        // them) become durable with the record, which counts them.
        FlushEntries();
        long line = _word + CommitRecord.LineOffset(_generation);
        CommitRecord.Write(_mapping.GetSpan(line, HeapLayout.LaneLine), _generation, _entries, EntryKind.Undo, hash, _seed);
        _mapping.Flush(line, HeapLayout.LaneLine);
        // The commit point: after this fence the data and the record are durable. The lane
        // word is not written: the next transaction of this lane confirms this one by writing
        // its first entry (a later generation), and a transaction of another lane that changes
        // a byte this one declared first settles it (raises this lane's word). Published before
        // Commit returns: a transaction that may touch the same bytes is serialised after this
        // return by the caller, so it sees it.
        _mapping.Drain();
        _heap.Pending.Publish(Index, _generation, _declared);
        _finished = _generation;
    }

    public void Abort()
    {
        PmemPool? pool = _heap.Owner;
        if (pool is not null && !pool.TryEnterRead())
        {
            // The pool was disposed first: its mapping may be gone. The lane's generation was not
            // published, so the next open rolls this transaction back from its undo log.
            End();
            return;
        }
        try
        {
            AbortEntered();
        }
        finally
        {
            pool?.ExitRead();
        }
    }

    private PmemPool? EnterPool()
    {
        PmemPool? pool = _heap.Owner;
        pool?.EnterRead();
        return pool;
    }

    private void AbortEntered()
    {
        // A redo-only transaction wrote nothing, in place or in the log (its entries were staged in
        // volatile memory): no fence; the lane's next transaction reuses its generation (the previous
        // commit's entries, in the other log, must stay intact until the next commit's fence).
        if (_undo && _entries > 0)
        {
            for (int i = 0; i < _entries; i++)
            {
                _mapping.Write(_mapping.GetReadOnlySpan(_entryPositions[i] + EntryHeader, _entryLengths[i]), _heap.Base + _entryTargets[i], PmemCopyOptions.NoDrain);
            }
            if (_previousPending && !_heap.SkipHomeFlushForTest)
            {
                // Raising the word to g says the previous commit is applied too: its home first.
                FlushRanges(_previousRanges);
            }
            _mapping.Drain();
            // Durable before Abort returns: recovery must not roll this generation back again over
            // changes made after it (its undo entries stay in the log).
            _heap.RaiseLaneWord(Index, _generation);
            _mapping.Drain();
            _heap.Pending.Clear(Index);
            _previousPending = false;
            _finished = _generation;
        }
        _heap.PushFree(_allocated.AsSpan(0, _allocatedCount));
        Diagnostics.StorageCounts.OnAbort();
        End();
    }

    /// <summary>
    /// Makes this transaction's snapshots durable before the first in-place change (the first of the
    /// undo commit's two fences). Before it, the lane's previous commit, if it is a redo commit not yet
    /// settled, is made durable and the lane word raised to it (its own fence first: the word must not
    /// reach the media before the home bytes), so recovery never replays it over this transaction's
    /// in-place changes; every other lane whose pending commit covers a byte this transaction has
    /// declared is settled too. The same fence confirms the lane's previous undo commit, by the undo
    /// entry it makes durable (a later generation). Then the redo bytes of a transaction that left
    /// the redo path are applied in place (their ranges were declared, so the commit flushes them).
    /// </summary>
    private void DrainSnapshots()
    {
        FlushEntries();
        if (_previousPending)
        {
            if (!_heap.SkipHomeFlushForTest)
            {
                FlushRanges(_previousRanges);
                _mapping.Drain();
            }
            _heap.RaiseLaneWord(Index, _finished);
            _previousPending = false;
        }
        _heap.SettleOverlappingLanes(Index, _declared);
        if (!_heap.SkipSnapshotDrainForTest)
        {
            _mapping.Drain();
        }
        _heap.Pending.Clear(Index);
        _drainPending = false;
        if (_applyPending)
        {
            ApplyRedo();
            _applyPending = false;
        }
    }

    /// <summary>
    /// The hash of the objects this redo commit allocates (allocated and not freed in it), by the rule
    /// recovery checks (<see cref="HeapValidation.RedoObjectsHash"/>): their contents, in ascending
    /// object order; null when it allocates none.
    /// </summary>
    private ulong? HashAllocatedObjects()
    {
        Span<int> indices = _allocatedCount <= 64 ? stackalloc int[_allocatedCount] : new int[_allocatedCount];
        int count = 0;
        for (int i = 0; i < _allocatedCount; i++)
        {
            if (Array.IndexOf(_freed, _allocated[i], 0, _freedCount) < 0)
            {
                indices[count++] = _allocated[i];
            }
        }
        if (count == 0)
        {
            return null;
        }
        indices = indices[..count];
        indices.Sort();
        _hasher.Reset();
        foreach (int index in indices)
        {
            _hasher.Append(_mapping.GetReadOnlySpan(_heap.ObjectsOffset + (long)index * _heap.ObjectSize, _heap.ObjectSize));
        }
        return _hasher.GetCurrentHashAsUInt64();
    }

    /// <summary>Copies the new bytes of this transaction's redo entries to their home ranges, in log order (cached stores, no flush).</summary>
    private void ApplyRedo()
    {
        for (int position = 0; position < _stagedUsed;)
        {
            ReadOnlySpan<byte> header = _staged.AsSpan(position, EntryHeader);
            long target = _heap.Base + BinaryPrimitives.ReadInt64LittleEndian(header[16..]);
            int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(header[24..]);
            _staged.AsSpan(position + EntryHeader, length).CopyTo(_mapping.GetSpan(target, length));
            position += EntryHeader + ((length + 7) & ~7);
        }
    }

    private void FlushRanges(RangeSet ranges)
    {
        for (int i = 0; i < ranges.Count; i++)
        {
            _mapping.Flush(ranges.StartAt(i), ranges.EndAt(i) - ranges.StartAt(i));
        }
    }

    /// <summary>Flushes the entries written since the last flush (without draining).</summary>
    private void FlushEntries()
    {
        if (_flushed < _used)
        {
            _mapping.Flush(_log + _flushed, _used - _flushed);
            _flushed = _used;
        }
    }

    private void End()
    {
        _active = false;
        _token++;
        Volatile.Write(ref Busy, 0);
    }

    private void WriteRedo(long target, ReadOnlySpan<byte> source)
    {
        int length = source.Length;
        int size = EntryHeader + ((length + 7) & ~7);
        // The log must hold the entries and the commit entry after them (the padding to a whole line
        // fits: the log's size is a multiple of 64).
        if ((long)_stagedUsed + size + EntryHeader > _capacity)
        {
            throw new TransactionLogFullException(Index, _capacity, _stagedUsed, size + EntryHeader);
        }
        if (_stagedUsed + size + EntryHeader + 64 > _staged.Length)
        {
            Array.Resize(ref _staged, Math.Max(_staged.Length * 2, _stagedUsed + size + EntryHeader + 64));
        }
        Span<byte> entry = _staged.AsSpan(_stagedUsed, size);
        WriteHeader(entry, target, length, EntryKind.Redo);
        source.CopyTo(entry[EntryHeader..]);
        entry[(EntryHeader + length)..].Clear();
        ulong checksum = XxHash3.HashToUInt64(entry[8..(EntryHeader + length)], _seed);
        BinaryPrimitives.WriteUInt64LittleEndian(entry, checksum);
        _redoDigest = MixDigest(_redoDigest, checksum);
        _stagedUsed += size;
        _redoCount++;
        _redoRanges.Add(target, target + length);
    }

    private void WriteEntry(long target, int length)
    {
        long position = _log + _used;
        PutEntry(target, _mapping.GetReadOnlySpan(target, length), EntryKind.Undo);
        if (_entries == _entryPositions.Length)
        {
            Array.Resize(ref _entryPositions, _entries * 2);
            Array.Resize(ref _entryTargets, _entries * 2);
            Array.Resize(ref _entryLengths, _entries * 2);
        }
        _entryPositions[_entries] = position;
        _entryTargets[_entries] = target - _heap.Base;
        _entryLengths[_entries] = length;
        _entries++;
        AdvanceLog(length);
        _drainPending = true;
    }

    // Undo entries up to this payload are built and hashed on the stack, then copied into the log in
    // one go: hashing them in the log would load bytes whose stores still wait for their lines (the log
    // half was flushed two transactions ago, and a flush may evict a line). Longer ones are hashed from
    // their source and the header, streaming.
    private const int StagedPayload = 256;

    /// <summary>Writes the entry {checksum, g, target, length, kind, payload} at the log's end (not flushed); returns its checksum.</summary>
    private ulong PutEntry(long target, ReadOnlySpan<byte> payload, EntryKind kind)
    {
        int length = payload.Length;
        long position = _log + _used;
        ulong checksum;
        if (length <= StagedPayload)
        {
            Span<byte> entry = stackalloc byte[EntryHeader + StagedPayload];
            WriteHeader(entry, target, length, kind);
            payload.CopyTo(entry[EntryHeader..]);
            checksum = XxHash3.HashToUInt64(entry[8..(EntryHeader + length)], _seed);
            BinaryPrimitives.WriteUInt64LittleEndian(entry, checksum);
            entry[..(EntryHeader + length)].CopyTo(_mapping.GetSpan(position, EntryHeader + length));
        }
        else
        {
            Span<byte> header = stackalloc byte[EntryHeader];
            WriteHeader(header, target, length, kind);
            _hasher.Reset();
            _hasher.Append(header[8..]);
            _hasher.Append(payload);
            checksum = _hasher.GetCurrentHashAsUInt64();
            BinaryPrimitives.WriteUInt64LittleEndian(header, checksum);
            Span<byte> entry = _mapping.GetSpan(position, EntryHeader + length);
            header.CopyTo(entry);
            payload.CopyTo(entry[EntryHeader..]);
        }
        return checksum;
    }

    private void WriteHeader(Span<byte> header, long target, int length, EntryKind kind)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(header[8..], _generation);
        BinaryPrimitives.WriteInt64LittleEndian(header[16..], target - _heap.Base);
        BinaryPrimitives.WriteUInt32LittleEndian(header[24..], (uint)length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[28..], (uint)kind);
    }

    // Whole lines are flushed now; the last, partial line with the entries after it before the
    // next drain (FlushEntries): it is often the next entry's first, and a flush may evict it.
    private void AdvanceLog(int length)
    {
        _used += EntryHeader + ((length + 7) & ~7);
        int whole = _used & ~63;
        if (whole > _flushed)
        {
            _mapping.Flush(_log + _flushed, whole - _flushed);
            _flushed = whole;
        }
    }

    private static void Append(ref int[] array, ref int count, int value)
    {
        if (count == array.Length)
        {
            Array.Resize(ref array, count * 2);
        }
        array[count++] = value;
    }
}
