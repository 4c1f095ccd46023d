using System.Buffers.Binary;
using System.IO.Hashing;
using DirectPmem.Mapping;
using DirectPmem.Storage;
using DirectPmem.Storage.Transactions;

namespace DirectPmem.KeyValue;

/// <summary>
/// A persistent hash table on DirectPmem transactions: put, get, delete and iterate byte keys and
/// values. Every put and delete is one failure-atomic transaction, so after a crash (power failure,
/// kill -9) the table holds exactly the operations that returned, plus possibly the one that was running.
/// </summary>
/// <remarks>
/// Layout: a <see cref="TransactionalHeap"/> whose root holds a signature, the bucket count and the
/// bucket array (one 8-byte head offset per bucket, 0 = empty); each entry is one fixed-size heap
/// object: next u64 @0, key length u16 @8, value length u16 @10, key hash u32 @12, key @16,
/// value @16+MaxKeyLength. Fixed capacity: the bucket count and the number of entries are set at
/// creation (no rehash); chains grow when there are more entries than buckets. Concurrency: one
/// lock per stripe of buckets (the heap leaves locking of user data to the caller), so puts to
/// different stripes run in parallel on different lanes.
/// </remarks>
public sealed class PersistentHashTable : IDisposable
{
    /// <summary>The longest key, in bytes.</summary>
    public const int MaxKeyLength = 32;

    /// <summary>The longest value, in bytes.</summary>
    public const int MaxValueLength = 128;

    private const string Layout = "DirectPmem.KeyValue";
    private const ulong Signature = 0x45524f5453564b44; // "DKVSTORE"
    private const int EntrySize = 192;                  // 16 + 32 + 128, three cache lines
    private const int KeyAt = 16;
    private const int ValueAt = KeyAt + MaxKeyLength;
    private const int BucketsAt = 64;
    private const int Stripes = 64;

    private readonly PmemPool? _pool;
    private readonly TransactionalHeap _heap;
    private readonly DaxMapping _map;
    private readonly long _buckets;
    private readonly int _bucketCount;
    private readonly Lock[] _locks = new Lock[Stripes];

    private PersistentHashTable(PmemPool? pool, TransactionalHeap heap)
    {
        _pool = pool;
        _heap = heap;
        _map = heap.Mapping;
        if (_map.GetReadOnlyRef<ulong>(heap.RootOffset) != Signature)
        {
            throw new InvalidDataException("The heap's root does not hold a key-value table.");
        }
        long buckets = _map.GetReadOnlyRef<long>(heap.RootOffset + 8);
        if (buckets < 1 || BucketsAt + buckets * 8 > heap.RootSize || heap.ObjectSize != EntrySize)
        {
            throw new InvalidDataException($"The table's bucket count {buckets} does not fit its root of {heap.RootSize} bytes.");
        }
        _bucketCount = (int)buckets;
        _buckets = heap.RootOffset + BucketsAt;
        for (int i = 0; i < Stripes; i++)
        {
            _locks[i] = new Lock();
        }
    }

    /// <summary>What opening found and rolled back.</summary>
    public HeapRecovery Recovery => _heap.Recovery;

    /// <summary>How many more entries fit.</summary>
    public int FreeEntries => _heap.FreeObjectCount;

    /// <summary>Creates a table in a new pool file.</summary>
    /// <param name="path">The file to create (mode 0600).</param>
    /// <param name="size">The file size; what is left after the buckets holds entries of 192 bytes.</param>
    /// <param name="buckets">The number of buckets (fixed).</param>
    /// <param name="lanes">How many transactions can run at once.</param>
    /// <returns>The empty table.</returns>
    public static PersistentHashTable CreateFile(string path, long size, int buckets = 4096, int lanes = 8)
    {
        // A sample runs wherever it is pointed, /tmp and /dev/shm included: it opts in to volatile memory and says so.
        PmemPool pool = PmemPool.CreateFile(path, size, Layout, new PoolCreateOptions { AllowVolatile = true });
        if (pool.CreatedOnVolatileMemory)
        {
            Console.Error.WriteLine($"note: {path} is {pool.CreatedOnBacking} (volatile memory): the table survives a crash of this process, not a reboot or power loss");
        }
        try
        {
            return new PersistentHashTable(pool, Format(pool.CreateTransactionalHeap(Options(buckets, lanes)), buckets));
        }
        catch
        {
            pool.Dispose();
            throw;
        }
    }

    /// <summary>Opens (and recovers) a table file.</summary>
    /// <param name="path">The file.</param>
    /// <returns>The table, holding exactly the committed operations.</returns>
    public static PersistentHashTable OpenFile(string path)
    {
        PmemPool pool = PmemPool.OpenFile(path, Layout);
        try
        {
            return new PersistentHashTable(pool, pool.OpenTransactionalHeap());
        }
        catch
        {
            pool.Dispose();
            throw;
        }
    }

    /// <summary>Creates a table in a region of a mapping (for tests and embedding).</summary>
    /// <param name="mapping">The mapping.</param>
    /// <param name="offset">The region start, a multiple of 64.</param>
    /// <param name="length">The region length, a multiple of 64.</param>
    /// <param name="buckets">The number of buckets (fixed).</param>
    /// <param name="lanes">How many transactions can run at once.</param>
    /// <returns>The empty table.</returns>
    public static PersistentHashTable Create(DaxMapping mapping, long offset, long length, int buckets = 64, int lanes = 2) =>
        new(null, Format(TransactionalHeap.Create(mapping, offset, length, Options(buckets, lanes)), buckets));

    /// <summary>Opens (and recovers) a table in a region of a mapping.</summary>
    /// <param name="mapping">The mapping.</param>
    /// <param name="offset">The region start.</param>
    /// <param name="length">The region length.</param>
    /// <returns>The table.</returns>
    public static PersistentHashTable Open(DaxMapping mapping, long offset, long length) =>
        new(null, TransactionalHeap.Open(mapping, offset, length));

    /// <summary>Inserts or replaces the value of <paramref name="key"/>; durable when it returns.</summary>
    /// <param name="key">1 to <see cref="MaxKeyLength"/> bytes.</param>
    /// <param name="value">0 to <see cref="MaxValueLength"/> bytes.</param>
    /// <exception cref="HeapFullException">The table is full; nothing changed.</exception>
    public void Put(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        CheckKey(key);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(value.Length, MaxValueLength, nameof(value));
        uint hash = Hash(key, out long bucket);
        lock (StripeOf(bucket))
        {
            using Transaction tx = _heap.Begin();
            long entry = Find(bucket, key, hash, out _);
            if (entry != 0)
            {
                // Replace: Transaction.Write puts the new length and value in the lane's redo log and
                // the commit copies them home after its one fence (home shows the old bytes until then).
                Span<byte> length = stackalloc byte[2];
                BinaryPrimitives.WriteUInt16LittleEndian(length, (ushort)value.Length);
                tx.Write(entry + 10, length);
                tx.Write(entry + ValueAt, value);
            }
            else
            {
                // A new entry is written in place (it is not reachable before the commit); the bucket
                // head (and the allocation map byte) change through the redo log, one fence in all.
                entry = tx.Allocate();
                Span<byte> e = tx.GetSpan(entry, EntrySize);
                BinaryPrimitives.WriteInt64LittleEndian(e, _map.GetReadOnlyRef<long>(bucket));
                BinaryPrimitives.WriteUInt16LittleEndian(e[8..], (ushort)key.Length);
                BinaryPrimitives.WriteUInt16LittleEndian(e[10..], (ushort)value.Length);
                BinaryPrimitives.WriteUInt32LittleEndian(e[12..], hash);
                key.CopyTo(e[KeyAt..]);
                value.CopyTo(e[ValueAt..]);
                Span<byte> head = stackalloc byte[8];
                BinaryPrimitives.WriteInt64LittleEndian(head, entry);
                tx.Write(bucket, head);
            }
            tx.Commit();
        }
    }

    /// <summary>Copies the value of <paramref name="key"/> into <paramref name="destination"/>.</summary>
    /// <param name="key">The key.</param>
    /// <param name="destination">At least <see cref="MaxValueLength"/> bytes, or the value's length.</param>
    /// <param name="length">The value's length.</param>
    /// <returns>Whether the key is present.</returns>
    public bool TryGet(ReadOnlySpan<byte> key, Span<byte> destination, out int length)
    {
        CheckKey(key);
        uint hash = Hash(key, out long bucket);
        lock (StripeOf(bucket))
        {
            long entry = Find(bucket, key, hash, out _);
            if (entry == 0)
            {
                length = 0;
                return false;
            }
            length = _map.GetReadOnlyRef<ushort>(entry + 10);
            _map.GetReadOnlySpan(entry + ValueAt, length).CopyTo(destination);
            return true;
        }
    }

    /// <summary>The value of <paramref name="key"/>, or null.</summary>
    /// <param name="key">The key.</param>
    /// <returns>A copy of the value, or <see langword="null"/> when absent.</returns>
    public byte[]? Get(ReadOnlySpan<byte> key)
    {
        Span<byte> buffer = stackalloc byte[MaxValueLength];
        return TryGet(key, buffer, out int length) ? buffer[..length].ToArray() : null;
    }

    /// <summary>Removes <paramref name="key"/>; durable when it returns.</summary>
    /// <param name="key">The key.</param>
    /// <returns>Whether it was present.</returns>
    public bool Delete(ReadOnlySpan<byte> key)
    {
        CheckKey(key);
        uint hash = Hash(key, out long bucket);
        lock (StripeOf(bucket))
        {
            long entry = Find(bucket, key, hash, out long link);
            if (entry == 0)
            {
                return false;
            }
            using Transaction tx = _heap.Begin();
            Span<byte> next = stackalloc byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(next, _map.GetReadOnlyRef<long>(entry));
            tx.Write(link, next); // unlink
            tx.Free(entry);       // freed at commit
            tx.Commit();
            return true;
        }
    }

    /// <summary>Every entry (copies), bucket by bucket; safe while others write (each bucket is read under its lock).</summary>
    /// <returns>The entries.</returns>
    public IEnumerable<KeyValuePair<byte[], byte[]>> Entries()
    {
        var chain = new List<KeyValuePair<byte[], byte[]>>();
        for (int b = 0; b < _bucketCount; b++)
        {
            long bucket = _buckets + b * 8L;
            chain.Clear();
            lock (StripeOf(bucket))
            {
                for (long e = _map.GetReadOnlyRef<long>(bucket); e != 0; e = _map.GetReadOnlyRef<long>(e))
                {
                    CheckEntry(e);
                    chain.Add(new(_map.GetReadOnlySpan(e + KeyAt, _map.GetReadOnlyRef<ushort>(e + 8)).ToArray(),
                                  _map.GetReadOnlySpan(e + ValueAt, _map.GetReadOnlyRef<ushort>(e + 10)).ToArray()));
                }
            }
            foreach (KeyValuePair<byte[], byte[]> pair in chain)
            {
                yield return pair;
            }
        }
    }

    /// <summary>Closes the table (and its pool file, marking it clean).</summary>
    public void Dispose()
    {
        _heap.Dispose();
        _pool?.Dispose();
    }

    private static TransactionalHeapOptions Options(int buckets, int lanes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(buckets, 1);
        return new() { LaneCount = lanes, LaneLogSize = 4096, RootSize = BucketsAt + buckets * 8, ObjectSize = EntrySize };
    }

    private static TransactionalHeap Format(TransactionalHeap heap, int buckets)
    {
        // The root starts zeroed (every bucket empty); the signature goes in with the bucket count, atomically.
        using (Transaction tx = heap.Begin())
        {
            tx.GetRef<long>(heap.RootOffset + 8) = buckets;
            tx.GetRef<ulong>(heap.RootOffset) = Signature;
            tx.Commit();
        }
        return heap;
    }

    private long Find(long bucket, ReadOnlySpan<byte> key, uint hash, out long link)
    {
        link = bucket;
        for (long e = _map.GetReadOnlyRef<long>(bucket); e != 0; link = e, e = _map.GetReadOnlyRef<long>(e))
        {
            CheckEntry(e);
            if (_map.GetReadOnlyRef<uint>(e + 12) == hash && _map.GetReadOnlyRef<ushort>(e + 8) == key.Length &&
                _map.GetReadOnlySpan(e + KeyAt, key.Length).SequenceEqual(key))
            {
                return e;
            }
        }
        return 0;
    }

    // Nothing read from the media is trusted before it is checked: a link must name an allocated
    // entry and its lengths must fit the entry.
    private void CheckEntry(long entry)
    {
        long index = (entry - _heap.ObjectsOffset) / EntrySize;
        if (entry < _heap.ObjectsOffset || index >= _heap.ObjectCount || (entry - _heap.ObjectsOffset) % EntrySize != 0 ||
            !_heap.IsAllocated(entry) || _map.GetReadOnlyRef<ushort>(entry + 8) is 0 or > MaxKeyLength ||
            _map.GetReadOnlyRef<ushort>(entry + 10) > MaxValueLength)
        {
            throw new InvalidDataException($"The table links to 0x{entry:x}, which is not a valid allocated entry.");
        }
    }

    private uint Hash(ReadOnlySpan<byte> key, out long bucket)
    {
        ulong hash = XxHash3.HashToUInt64(key);
        bucket = _buckets + (long)(hash % (ulong)_bucketCount) * 8;
        return (uint)(hash >> 32);
    }

    private Lock StripeOf(long bucket) => _locks[(int)((bucket - _buckets) / 8 % Stripes)];

    private static void CheckKey(ReadOnlySpan<byte> key)
    {
        if (key.IsEmpty || key.Length > MaxKeyLength)
        {
            throw new ArgumentOutOfRangeException(nameof(key), key.Length, $"A key has 1 to {MaxKeyLength} bytes.");
        }
    }
}
