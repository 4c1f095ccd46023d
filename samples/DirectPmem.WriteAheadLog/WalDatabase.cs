using System.Buffers.Binary;
using DirectPmem.Storage;

namespace DirectPmem.Samples.WriteAheadLog;

/// <summary>
/// A tiny bank database: 16 account balances kept in memory, made durable by a write-ahead log of
/// redo records and periodic checkpoints, all in one DirectPmem pool.
/// </summary>
/// <remarks>
/// Pool data area, at the root offset R:
///   R + 0      checkpoint word: (checkpoint LSN &lt;&lt; 1) | table slot, one failure-atomic 8-byte publish
///   R + 4096   table slot 0: 16 balances and the next transaction id (17 longs)
///   R + 8192   table slot 1
///   R + 12288  the log
/// A checkpoint writes the in-memory table into the slot not in use (durably), publishes the
/// checkpoint word naming that slot and the log tail, and only then truncates the log: a crash at
/// any point leaves either the old checkpoint with all its log records, or the new one.
/// Recovery loads the table of the published slot and replays the log from the checkpoint LSN.
/// </remarks>
public sealed class WalDatabase : IDisposable
{
    public const string Layout = "directpmem-wal-sample";
    public const int Accounts = 16;
    public const long InitialBalance = 1000;
    public const int RecordLength = 24; // txid u64, from u32, to u32, amount i64
    public const long TableSlot0 = 4096;
    public const long LogStart = 12288;

    private readonly PmemPool _pool;
    private readonly PmemLog _log;
    private readonly long _root;
    private readonly long[] _balances = new long[Accounts];
    private int _slot;

    public WalDatabase(string path, long size = 8L << 20)
    {
        _pool = OpenOrCreate(path, size);
        if (_pool.RootOffset == 0)
        {
            // First start (or a crash before the first SetRoot): lay out the tables and the log, then publish the root.
            long root = _pool.DataOffset;
            Array.Fill(_balances, InitialBalance);
            WriteTable(root, 0, nextTxid: 1);
            _pool.Mapping.Publish(root, 0);
            // overwrite: a crash after an earlier Create and before SetRoot left an unreachable log there.
            PmemLog.Create(_pool, root + LogStart, (_pool.Size - root - LogStart) / 4096 * 4096, overwrite: true);
            _pool.SetRoot(root);
        }
        _root = _pool.RootOffset;
        _log = PmemLog.Open(_pool, _root + LogStart);
        Recover();
    }

    public PmemPool Pool => _pool;

    public PmemLog Log => _log;

    public long NextTransactionId { get; private set; }

    public long CheckpointLsn { get; private set; }

    public int Replayed { get; private set; }

    public long Total => _balances.Sum();

    public long Balance(int account) => _balances[account];

    /// <summary>Moves money between two accounts: the redo record is durable before the change is applied.</summary>
    public (long Txid, long Lsn) Transfer(int from, int to, long amount)
    {
        Span<byte> record = stackalloc byte[RecordLength];
        long txid = NextTransactionId;
        BinaryPrimitives.WriteInt64LittleEndian(record, txid);
        BinaryPrimitives.WriteInt32LittleEndian(record[8..], from);
        BinaryPrimitives.WriteInt32LittleEndian(record[12..], to);
        BinaryPrimitives.WriteInt64LittleEndian(record[16..], amount);
        long lsn;
        try
        {
            lsn = _log.Append(record);
        }
        catch (LogFullException)
        {
            Checkpoint(); // make room: everything applied so far goes into the table
            lsn = _log.Append(record);
        }
        Apply(record);
        return (txid, lsn);
    }

    /// <summary>Writes the table to the free slot, publishes it with the log position, then truncates the log.</summary>
    public void Checkpoint()
    {
        long tail = _log.Tail;
        int slot = 1 - _slot;
        WriteTable(_root, slot, NextTransactionId);
        _pool.Mapping.Publish(_root, ((ulong)tail << 1) | (uint)slot);
        _slot = slot;
        CheckpointLsn = tail;
        _log.Truncate(tail);
    }

    public void Dispose() => _pool.Dispose();

    private static PmemPool OpenOrCreate(string path, long size)
    {
        if (File.Exists(path))
        {
            try
            {
                return PmemPool.OpenFile(path, Layout);
            }
            catch (PoolFormatException e) when (e.Field == PoolHeaderField.Signature)
            {
                // A crash during the very first creation: there never was a pool in this file.
                File.Delete(path);
            }
        }
        // A sample runs wherever it is pointed, /dev/shm included: it opts in to volatile memory and says so.
        PmemPool pool = PmemPool.CreateFile(path, size, Layout, new PoolCreateOptions { AllowVolatile = true });
        if (pool.CreatedOnVolatileMemory)
        {
            Console.Error.WriteLine($"note: {path} is {pool.CreatedOnBacking} (volatile memory): the log survives a crash of this process, not a reboot or power loss");
        }
        return pool;
    }

    private void Recover()
    {
        ulong word = _pool.Mapping.GetReadOnlyRef<ulong>(_root);
        _slot = (int)(word & 1);
        CheckpointLsn = (long)(word >> 1);
        long table = _root + TableSlot0 + _slot * 4096L;
        for (int i = 0; i < Accounts; i++)
        {
            _balances[i] = _pool.Mapping.GetReadOnlyRef<long>(table + i * 8L);
        }
        NextTransactionId = _pool.Mapping.GetReadOnlyRef<long>(table + Accounts * 8L);
        // Records before the checkpoint are already in the table (a crash may have come before the truncate).
        long from = Math.Max(CheckpointLsn, _log.Head);
        foreach (LogRecord record in _log.ReadFrom(from))
        {
            Apply(record.Payload);
            Replayed++;
        }
    }

    private void Apply(ReadOnlySpan<byte> record)
    {
        long txid = BinaryPrimitives.ReadInt64LittleEndian(record);
        int from = BinaryPrimitives.ReadInt32LittleEndian(record[8..]);
        int to = BinaryPrimitives.ReadInt32LittleEndian(record[12..]);
        long amount = BinaryPrimitives.ReadInt64LittleEndian(record[16..]);
        if (txid != NextTransactionId || (uint)from >= Accounts || (uint)to >= Accounts)
        {
            throw new InvalidDataException($"redo record {txid} does not follow transaction {NextTransactionId - 1}");
        }
        _balances[from] -= amount;
        _balances[to] += amount;
        NextTransactionId = txid + 1;
    }

    private void WriteTable(long root, int slot, long nextTxid)
    {
        Span<byte> table = stackalloc byte[(Accounts + 1) * 8];
        for (int i = 0; i < Accounts; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(table[(i * 8)..], _balances[i]);
        }
        BinaryPrimitives.WriteInt64LittleEndian(table[(Accounts * 8)..], nextTxid);
        _pool.Mapping.Write(table, root + TableSlot0 + slot * 4096L);
    }
}
