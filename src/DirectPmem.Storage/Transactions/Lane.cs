using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using DirectPmem.Mapping;
using DirectPmem.Persistence;

namespace DirectPmem.Storage.Transactions;

/// <summary>
/// One lane: its generation word, its bounded undo log and the volatile state of the transaction
/// running on it. Undo entry format (little-endian, 8-byte aligned): checksum u64 (XxHash3, seeded
/// by the lane index, of every byte after it up to the end of the snapshot) @0, generation u64 @8,
/// target offset relative to the heap region i64 @16, length u32 @24, zero u32 @28, then the
/// snapshot padded to 8 bytes.
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
    private int[] _allocated = new int[4];
    private int _allocatedCount;
    private long[] _entryPositions = new long[8];
    private long[] _entryTargets = new long[8];
    private int[] _entryLengths = new int[8];
    private int[] _freed = new int[4];
    private int _freedCount;

    private ulong _finished;
    private ulong _generation;
    private ulong _token;
    private bool _active;
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
        _logs = _word + HeapLayout.LaneLine;
        _capacity = heap.Layout.LaneLogSize;
        _log = _logs;
        _mapOffset = heap.Base + heap.Layout.MapOffset;
        _seed = ChecksumSeed(index);
        _hasher = new XxHash3(_seed);
        _finished = finished;
    }

    public int Index { get; }

    public int LogUsed => _used;

    public static long ChecksumSeed(int lane) => 0x4450_5458 + lane;

    /// <summary>Where generation <paramref name="generation"/>'s undo entries start, relative to the lane's log: odd generations use the second of the lane's two logs.</summary>
    public static long HalfOffset(HeapLayout layout, ulong generation) => (long)(generation & 1) * layout.LaneLogSize;

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
        finally
        {
            pool?.ExitRead();
        }
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

    /// <summary>Declares the range and copies <paramref name="source"/> into it, inside the pool's read guard.</summary>
    public void Write(long offset, ReadOnlySpan<byte> source)
    {
        PmemPool? pool = EnterPool();
        try
        {
            AddRange(offset, source.Length);
            source.CopyTo(GetSpan(offset, source.Length));
        }
        finally
        {
            pool?.ExitRead();
        }
    }

    public long Allocate()
    {
        int index = _heap.PopFree();
        try
        {
            AddRange(_mapOffset + index, 1);
        }
        catch
        {
            _heap.PushFree([index]);
            throw;
        }
        Append(ref _allocated, ref _allocatedCount, index);
        long offset = _heap.ObjectsOffset + (long)index * _heap.ObjectSize;
        _fresh.Add(offset, offset + _heap.ObjectSize);
        _declared.Add(offset, offset + _heap.ObjectSize);
        return offset;
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
            AddRange(_mapOffset + index, 1);
            Append(ref _freed, ref _freedCount, index);
        }
        finally
        {
            pool?.ExitRead();
        }
    }

    // What a 1-range (64 B) commit costs on the production path, and what a crash leaves at each step
    // (the README's transaction section has the full analysis; TransactionCrashTests sweeps it):
    //   AddRange  the entry {checksum, g, target, length, 64 old bytes} (96 B, two lines) is written and
    //             its whole line flushed. Crash: nothing changed in place; a torn or absent entry means
    //             nothing in flight.
    //   GetSpan   the partial last line is flushed, overlapping unconfirmed commits of other lanes are
    //             raised, fence 1. Crash while the caller writes: g's entries verify above the lane's
    //             word and the record is g - 1's or older, so recovery rolls g back.
    //   Commit    data line and lane line (the record {g, entries, data hash, check}) flushed, fence 2.
    //             Crash before it completes: the record is torn or its hash misses the media, rolled
    //             back; after it: record and data match, g is kept. The lane word is not written.
    // Four line flushes and two fences, none repeated: two fences are the floor of an undo log whose
    // caller writes in place before Commit, and a fence costs about the same after 1 to 4 lines
    // (bench/README, "Where a 1-range commit's time goes").
    public void Commit()
    {
        // Inside the pool's read guard: the pool's Dispose waits for this step, or it throws ObjectDisposedException.
        PmemPool? pool = EnterPool();
        try
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
            if (_entries > 0)
            {
                // A transaction that declared ranges but changed nothing in place has not drained its
                // snapshots yet. Its record is about to overwrite this lane's previous one, which may
                // still be unconfirmed: make the undo entries (a later generation at the start of the
                // log, which confirms that commit) durable first, or a crash that tears the new record
                // before they reach the media leaves neither record valid and rolls an acknowledged
                // commit back. Costs a fence only in that rare shape (TransactionCrashTests.DeclareOnly).
                if (_drainPending)
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
                for (int i = 0; i < _declared.Count; i++)
                {
                    _mapping.Flush(_declared.StartAt(i), _declared.EndAt(i) - _declared.StartAt(i));
                }
                // Entries declared after the last snapshot drain (nothing was changed in place under
                // them) become durable with the record, which counts them.
                FlushEntries();
                CommitRecord.Write(_mapping.GetSpan(_word, HeapLayout.LaneLine), _generation, _entries, hash, _seed);
                _mapping.Flush(_word, HeapLayout.LaneLine);
                // The commit point: after this fence the data and the record are durable. The lane
                // word is not written: the next transaction of this lane confirms this one by writing
                // its first undo entry (a later generation at the start of the log), and a transaction
                // of another lane that changes in place a byte this one declared first raises this
                // lane's word (DrainSnapshots). Published before Commit returns: a transaction that may
                // touch the same bytes is serialised after this return by the caller, so it sees it.
                _mapping.Drain();
                _heap.Pending.Publish(Index, _generation, _declared);
                _finished = _generation;
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
        if (_entries > 0)
        {
            long position = _log;
            for (int i = 0; i < _entries; i++)
            {
                ReadOnlySpan<byte> header = _mapping.GetReadOnlySpan(position, EntryHeader);
                long target = _heap.Base + BinaryPrimitives.ReadInt64LittleEndian(header[16..]);
                int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(header[24..]);
                _mapping.Write(_mapping.GetReadOnlySpan(position + EntryHeader, length), target, PmemCopyOptions.NoDrain);
                position += EntryHeader + ((length + 7) & ~7);
            }
            _mapping.Drain();
            // Durable before Abort returns: recovery must not roll this generation back again over
            // changes made after it (its undo entries stay in the log).
            _heap.RaiseLaneWord(Index, _generation);
            _mapping.Drain();
            _heap.Pending.Clear(Index);
            _finished = _generation;
        }
        _heap.PushFree(_allocated.AsSpan(0, _allocatedCount));
        Diagnostics.StorageCounts.OnAbort();
        End();
    }

    /// <summary>
    /// Makes this transaction's snapshots durable before the first in-place change (the first of the
    /// commit's two fences). The same fence confirms the last commit of this lane, by the undo entry it
    /// makes durable (a later generation at the start of the log), and of every other lane whose
    /// unconfirmed commit covers a byte this transaction has declared, by raising their words first.
    /// So once a transaction changes in place data that a commit's hash covers, that commit no longer
    /// depends on its hash, which the change would break; a commit whose data nobody else changes
    /// keeps matching its hash, and its lane line stays on its own core.
    /// </summary>
    private void DrainSnapshots()
    {
        FlushEntries();
        _heap.ConfirmOverlappingLanes(Index, _declared);
        if (!_heap.SkipSnapshotDrainForTest)
        {
            _mapping.Drain();
        }
        _heap.Pending.Clear(Index);
        _drainPending = false;
    }

    /// <summary>Flushes the undo entries written since the last flush (without draining).</summary>
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

    private void WriteEntry(long target, int length)
    {
        long position = _log + _used;
        Span<byte> entry = _mapping.GetSpan(position, EntryHeader + length);
        BinaryPrimitives.WriteUInt64LittleEndian(entry[8..], _generation);
        BinaryPrimitives.WriteInt64LittleEndian(entry[16..], target - _heap.Base);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[24..], (uint)length);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[28..], 0);
        _mapping.GetReadOnlySpan(target, length).CopyTo(entry[EntryHeader..]);
        BinaryPrimitives.WriteUInt64LittleEndian(entry, XxHash3.HashToUInt64(entry[8..], _seed));
        // Whole lines are flushed now; the last, partial line with the entries after it before the
        // next drain (FlushEntries): it is often the next entry's first, and a flush may evict it.
        if (_entries == _entryPositions.Length)
        {
            Array.Resize(ref _entryPositions, _entries * 2);
            Array.Resize(ref _entryTargets, _entries * 2);
            Array.Resize(ref _entryLengths, _entries * 2);
        }
        _entryPositions[_entries] = position;
        _entryTargets[_entries] = target - _heap.Base;
        _entryLengths[_entries] = length;
        _used += EntryHeader + ((length + 7) & ~7);
        _entries++;
        int whole = _used & ~63;
        if (whole > _flushed)
        {
            _mapping.Flush(_log + _flushed, whole - _flushed);
            _flushed = whole;
        }
        _drainPending = true;
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
