using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.IO.Hashing;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using DirectPmem.Mapping;
using DirectPmem.Persistence;

namespace DirectPmem.Storage;

/// <summary>
/// A crash-consistent, circular, append-only log in a pool, shaped for a database's write-ahead
/// log: concurrent appenders reserve space without a lock, copy their records in parallel, and
/// each append is made durable with one fence. An append returns only when its record and every
/// record before it are durable.
/// </summary>
/// <remarks>
/// <para><b>Layout</b> (<see cref="LogFormat"/>). At <see cref="Offset"/> a 4 KiB header: a 128-byte block
/// in the shared format-header layout (signature, format 5.0, feature words, ring capacity, checksum
/// nonce, unpersisted-tail window, checksum); the tail word (+128) and the head word (+192), each on
/// its own cache line. The ring of <see cref="Capacity"/> bytes follows. A record is a frame of 16
/// bytes (payload length u32, checksum u32, LSN i64) and the payload, padded to whole cache lines
/// (<see cref="FrameLength"/>): appenders on different cores never write the same line.
/// An LSN is a byte position that only grows; it lives at ring offset LSN mod capacity. A log of
/// formats 1 to 4 (earlier previews; format 4 padded short frames to 16 bytes only) is refused: this
/// preview does not convert them.</para>
/// <para><b>Append</b> (<see cref="LogCommit"/>; what a crash leaves at each step):</para>
/// <list type="number">
/// <item>Reserve: a compare-and-swap advances the volatile reservation cursor, if the ring has room
/// after the head (else <see cref="LogFullException"/>) and the frame starts before the tail word
/// plus the window (else the tail word is persisted first). A crash leaves nothing new.</item>
/// <item>Copy (<see cref="LogRing"/>): the frame, whole cache lines, is written with non-temporal stores, then this thread's stores
/// are drained: the one fence of the append. Appenders copy in parallel. A crash leaves the frame
/// whole, torn or absent, inside the window after the tail word.</item>
/// <item>Complete: the appender whose record starts at the completion cursor (every earlier record
/// is drained) moves it with one plain store to its end, or further, over the drained records after
/// it that their appenders announced (volatile done slots) while they waited; it wakes them. An
/// appender returns once the cursor covers its record: the record is acknowledged. Nothing is
/// published: the record validates itself (its LSN, its checksum). A crash leaves what step 2 left:
/// the cursor and the slots are volatile, and the cursor only ever covers drained records.</item>
/// <item>Lazily (an appender passing half the window, <see cref="Truncate"/>, <see cref="Dispose"/>,
/// a reservation past the window): the completion cursor is persisted as the tail word with one
/// 8-byte failure-atomic publish. A crash leaves the old or the new word, both at or below the end
/// of every acknowledged record.</item>
/// </list>
/// <para><b>Recovery</b> on open scans from the tail word while frames validate (LSN equal to their
/// position, length within the ring, checksum seeded with the log's nonce, LSN and length); the
/// first that does not ends the log. Acknowledged records form a drained prefix, so all are found.
/// Then the rest of the window the crashed appenders could have written is cleared and the end
/// persisted as the tail word, so that a record in flight behind a hole never validates after later
/// records fill the hole. A torn frame passes the checksum with probability about 2^-32 per frame
/// in flight at the crash (at most one per appender). Reads check every frame and never return a
/// damaged one.</para>
/// <para><b>Truncate</b> persists the tail word when it is behind, then the new head, before the
/// space is reused. The log is circular: appends fail with <see cref="LogFullException"/> when the
/// records between head and tail plus the new ones would exceed <see cref="Capacity"/>.</para>
/// <para><b>Disposal.</b> <see cref="Dispose"/> persists the tail word (the next open scans nothing)
/// and ends this instance. The log belongs to its pool: every operation racing the pool's
/// <see cref="PmemPool.Dispose"/> completes (an append that returns is durable) or throws
/// <see cref="ObjectDisposedException"/> naming the pool, never a full log or a damaged one.</para>
/// </remarks>
public sealed class PmemLog : IDisposable
{
    // On-media layout (LogFormat): not public. A user sizes records with FrameLength and logs with LengthFor.
    internal const int FrameHeaderSize = LogFormat.FrameHeaderSize;
    internal const int FrameAlignment = LogFormat.FrameAlignment;
    internal const int HeaderLength = LogFormat.HeaderLength;

    internal const int TailWordOffset = LogFormat.TailWordOffset;
    internal const int HeadWordOffset = LogFormat.HeadWordOffset;

    private const int CacheLine = LogFormat.CacheLine;

    private readonly PmemPool _pool;
    private readonly DaxMapping _mapping;
    private readonly long _capacity;
    private readonly LogRing _ring;
    private readonly LogCommit _commit;
    private readonly Lock _truncateGate = new();
    private readonly LogMediaLoss? _recoveryLoss;
    private string? _readOnlyReason;
    private int _disposed;

    private PmemLog(PmemPool pool, long offset, in LogLayout layout, long head, long durableTail, long tail,
        LogMediaErrorPolicy mediaErrorPolicy = LogMediaErrorPolicy.Stop, LogMediaLoss? recoveryLoss = null)
    {
        MediaErrorPolicy = mediaErrorPolicy;
        _recoveryLoss = recoveryLoss;
        _pool = pool;
        _mapping = pool.Mapping;
        Offset = offset;
        _capacity = layout.Capacity;
        _ring = new LogRing(_mapping, offset + HeaderLength, layout.Capacity, layout.Nonce);
        _commit = new LogCommit(pool, offset + TailWordOffset, offset + HeaderLength, layout.Capacity, layout.Window, head, durableTail, tail);
        Diagnostics.StorageCounts.Touch();
    }

    /// <summary>Where the log starts in the pool.</summary>
    public long Offset { get; }

    /// <summary>What recovery and this log's readers do with a record on unreadable media (<see cref="LogOpenOptions.MediaErrorPolicy"/>; <see cref="LogMediaErrorPolicy.Stop"/> for a log made by Create).</summary>
    public LogMediaErrorPolicy MediaErrorPolicy { get; }

    /// <summary>
    /// The LSNs recovery found lost to unreadable media (poison, or a page past the end of a truncated
    /// file) where it scans, past the tail word; null when it met none. When it is set the log is
    /// read-only (<see cref="IsReadOnly"/>): recovery wrote nothing (clearing or appending over a bad
    /// range would raise SIGBUS, every open again), so each open finds and reports the same loss. Under
    /// <see cref="LogMediaErrorPolicy.Stop"/> <see cref="Tail"/> is its <see cref="LogMediaLoss.StartLsn"/>;
    /// under <see cref="LogMediaErrorPolicy.Skip"/> the scan went on after it. Clear the range
    /// (<c>dpmem check --repair</c> on fsdax, the operator's <c>ndctl clear-errors</c> on device-DAX) or
    /// copy the records to a new log. Records before the tail word are not scanned at open: a reader
    /// meets their damage (<see cref="LogReader.Losses"/>).
    /// </summary>
    public LogMediaLoss? RecoveryLoss => _recoveryLoss;

    /// <summary>Whether appends and truncation are refused: the pool is read-only, recovery met unreadable media (<see cref="RecoveryLoss"/>), or the header has a read-only-compatible feature this library does not know.</summary>
    public bool IsReadOnly => _recoveryLoss is not null || _readOnlyReason is not null || _pool.IsReadOnly;

    /// <summary>The log's length in the pool: header and ring.</summary>
    public long Length => HeaderLength + _capacity;

    /// <summary>The ring capacity in bytes (frames included).</summary>
    public long Capacity => _capacity;

    /// <summary>The LSN of the first live record (everything before it was truncated).</summary>
    public long Head => _commit.Head;

    /// <summary>The durable tail: the LSN after the last acknowledged record (every record before it is durable).</summary>
    public long Tail => _commit.Tail;

    /// <summary>The bytes free for appends now (frames included).</summary>
    public long FreeBytes => _capacity - (_commit.Reserved - Head);

    /// <summary>The largest payload one record can have: the capacity minus one frame header.</summary>
    public int MaxRecordLength => (int)Math.Min(int.MaxValue - 2 * CacheLine, _capacity - FrameHeaderSize);

    /// <summary>
    /// The bytes a record of <paramref name="payloadLength"/> takes in the ring: header, payload,
    /// padding to a multiple of 64 (a cache line). Every record starts on a line, so two appenders
    /// never write (and flush) the same line, and a record never rewrites a line the one before it
    /// flushed: a 64-byte payload takes 128 bytes.
    /// </summary>
    /// <param name="payloadLength">The payload length.</param>
    /// <returns>The frame length, a multiple of 64.</returns>
    public static int FrameLength(int payloadLength) => LogFormat.FrameLength(payloadLength);

    /// <summary>The length a log with a ring of <paramref name="capacity"/> bytes takes in a pool.</summary>
    /// <param name="capacity">The ring capacity, a positive multiple of 4096.</param>
    /// <returns>The log length.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="capacity"/> is not a positive multiple of 4096, or the log would be longer than <see cref="long.MaxValue"/>.</exception>
    public static long LengthFor(long capacity)
    {
        if (capacity <= 0 || capacity % HeaderLength != 0 || capacity > long.MaxValue - HeaderLength)
        {
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, string.Create(CultureInfo.InvariantCulture,
                $"The ring capacity {capacity} must be a positive multiple of {HeaderLength} that leaves room for the {HeaderLength}-byte header below {long.MaxValue}."));
        }
        return HeaderLength + capacity;
    }

    /// <summary>
    /// Creates an empty log at <paramref name="offset"/> in the pool's data area, durably. Create it,
    /// then make it reachable (for example <see cref="PmemPool.SetRoot"/>): a crash in between leaves
    /// an unreachable log that the application creates again.
    /// </summary>
    /// <param name="pool">A writable pool.</param>
    /// <param name="offset">A multiple of 4096 in the data area.</param>
    /// <param name="length">The log's length: a multiple of 4096, at least 8192, within the pool.</param>
    /// <returns>The log.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The range is not 4 KiB aligned or not in the data area.</exception>
    /// <exception cref="InvalidOperationException">The pool is read-only.</exception>
    /// <exception cref="LogExistsException">A log is already there (an intact header); use <see cref="Open(PmemPool, long)"/>, or the overload with <c>overwrite</c>.</exception>
    public static PmemLog Create(PmemPool pool, long offset, long length) => Create(pool, offset, length, overwrite: false);

    /// <summary>
    /// Creates an empty log at <paramref name="offset"/>, durably; with <paramref name="overwrite"/>
    /// a log already there is replaced (its records are lost).
    /// </summary>
    /// <param name="pool">A writable pool.</param>
    /// <param name="offset">A multiple of 4096 in the data area.</param>
    /// <param name="length">The log's length: a multiple of 4096, at least 8192, within the pool.</param>
    /// <param name="overwrite">Whether to replace a log already at <paramref name="offset"/>.</param>
    /// <returns>The log.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The range is not 4 KiB aligned or not in the data area.</exception>
    /// <exception cref="InvalidOperationException">The pool is read-only.</exception>
    /// <exception cref="LogExistsException">A log is already there and <paramref name="overwrite"/> is false.</exception>
    public static PmemLog Create(PmemPool pool, long offset, long length, bool overwrite)
    {
        ArgumentNullException.ThrowIfNull(pool);
        pool.ThrowIfUnwritable();
        if (offset % HeaderLength != 0 || offset < pool.DataOffset || offset > pool.Size)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset, string.Create(CultureInfo.InvariantCulture,
                $"The log must start at a multiple of {HeaderLength} in the pool's data area [{pool.DataOffset}, {pool.Size})."));
        }
        if (length % HeaderLength != 0 || length < 2 * HeaderLength || length > pool.Size - offset)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, string.Create(CultureInfo.InvariantCulture,
                $"The log length must be a multiple of {HeaderLength}, at least {2 * HeaderLength}, and fit in the pool after offset {offset} ({pool.Size - offset} bytes)."));
        }
        if (!overwrite)
        {
            ThrowIfLive(pool, offset);
        }
        long capacity = length - HeaderLength;
        var layout = new LogLayout(capacity, Random.Shared.NextInt64(), LogFormat.WindowFor(capacity));
        byte[] header = new byte[HeaderLength];
        LogFormat.WriteHeader(header, layout);
        pool.Mapping.Write(header, offset);
        return new PmemLog(pool, offset, layout, head: 0, durableTail: 0, tail: 0);
    }

    /// <summary>
    /// Opens the log at <paramref name="offset"/> and recovers it: the tail is the last published
    /// position, anything after it is ignored and will be overwritten.
    /// </summary>
    /// <param name="pool">The pool holding the log (read-only pools give a read-only log).</param>
    /// <param name="offset">Where the log was created.</param>
    /// <returns>The log.</returns>
    /// <exception cref="LogFormatException">A header check failed; <see cref="LogFormatException.Field"/> names the field.</exception>
    /// <exception cref="ObjectDisposedException">The pool has been disposed.</exception>
    /// <remarks>Recovery that meets unreadable media stops at the record before it and opens the log read-only, reporting the loss in <see cref="RecoveryLoss"/> (the overload with <see cref="LogOpenOptions"/> can skip it instead).</remarks>
    public static PmemLog Open(PmemPool pool, long offset) => Open(pool, offset, null);

    /// <summary>
    /// Opens the log at <paramref name="offset"/> and recovers it, with <paramref name="options"/>
    /// saying what recovery and the log's readers do with a record on unreadable media.
    /// </summary>
    /// <param name="pool">The pool holding the log (read-only pools give a read-only log).</param>
    /// <param name="offset">Where the log was created.</param>
    /// <param name="options">The options, or null for the defaults.</param>
    /// <returns>The log; <see cref="RecoveryLoss"/> says what recovery could not read (the log is then read-only).</returns>
    /// <exception cref="LogFormatException">A header check failed; <see cref="LogFormatException.Field"/> names the field.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="LogOpenOptions.MediaErrorPolicy"/> is not a defined value.</exception>
    /// <exception cref="ObjectDisposedException">The pool has been disposed.</exception>
    public static PmemLog Open(PmemPool pool, long offset, LogOpenOptions? options)
    {
        ArgumentNullException.ThrowIfNull(pool);
        LogMediaErrorPolicy policy = options?.MediaErrorPolicy ?? LogMediaErrorPolicy.Stop;
        if (policy is not (LogMediaErrorPolicy.Stop or LogMediaErrorPolicy.Skip))
        {
            throw new ArgumentOutOfRangeException(nameof(options), policy, "PmemLog.Open: LogOpenOptions.MediaErrorPolicy must be Stop or Skip.");
        }
        // The header is read through spans: inside the pool's read guard, so a Dispose racing the open waits.
        pool.EnterRead();
        try
        {
            return OpenCore(pool, offset, policy);
        }
        finally
        {
            pool.ExitRead();
        }
    }

    private static void ThrowIfLive(PmemPool pool, long offset)
    {
        Span<byte> header = stackalloc byte[LogFormat.BlockLength];
        MediaRead.Copy(pool.Mapping, offset, header);
        if (!LogFormat.LooksLive(header))
        {
            return;
        }
        LogInspection there = Inspect(pool.Mapping, offset, pool.DataOffset);
        throw new LogExistsException(offset, there.Capacity, there.Head, there.Tail, there.Records);
    }

    private static PmemLog OpenCore(PmemPool pool, long offset, LogMediaErrorPolicy policy)
    {
        var sink = new ThrowingLogProblemSink();
        LogFormat.Examine(pool.Mapping, offset, pool.DataOffset, pool.Size, sink, out LogLayout layout, out long durableTail, out long head, out _);
        long tail = Recover(pool, offset, layout, durableTail, head, policy, sink.ReadOnlyReason is not null, out LogMediaLoss? loss);
        bool writesNothing = pool.IsReadOnly || loss is not null || sink.ReadOnlyReason is not null;
        return new PmemLog(pool, offset, layout, head, Math.Max(durableTail, writesNothing ? durableTail : tail), tail, policy, loss)
        {
            _readOnlyReason = sink.ReadOnlyReason,
        };
    }

    /// <summary>
    /// Recovery: the records from the tail word on are scanned while they validate (LSN, length,
    /// checksum); the first that does not ends the log. On a writable pool the rest of the window
    /// the crashed appenders could have written, [end, tail word + window), is then cleared, and
    /// the end published as the tail word, so that a record that was in flight at the crash can
    /// never validate later (after new records fill the gap before it). A crash during this leaves
    /// the tail word where it was and the next open does the same again.
    /// A frame on unreadable media is a loss (<paramref name="loss"/>): the search for the next frame
    /// that validates runs under either policy (to report the gap), the scan goes on after it only under
    /// <see cref="LogMediaErrorPolicy.Skip"/>, and nothing is written (the log opens read-only).
    /// </summary>
    private static long Recover(PmemPool pool, long offset, in LogLayout layout, long durableTail, long head,
        LogMediaErrorPolicy policy, bool writeNothing, out LogMediaLoss? loss)
    {
        DaxMapping mapping = pool.Mapping;
        long ringOffset = offset + HeaderLength;
        long limit = head + layout.Capacity;
        // Appenders start frames only before the tail word plus the window: no record lies past it.
        long probeEnd = Math.Min(durableTail + layout.Window, limit);
        byte[] scratch = new byte[256];
        long lsn = durableTail;
        loss = null;
        while (lsn < limit)
        {
            int length;
            try
            {
                length = LogFormat.CheckFrame(mapping, ringOffset, layout, lsn, limit, ref scratch, out _);
            }
            catch (PmemMediaErrorException e)
            {
                bool resumed = LogFormat.FindIntactAfter(mapping, ringOffset, layout, lsn, probeEnd, limit, e, ref scratch, out long next);
                // The first loss is the one reported (a second one after it, under Skip, ends the scan: the log is read-only anyway).
                if (loss is not null)
                {
                    break;
                }
                loss = new LogMediaLoss(offset, lsn, next, resumed, e);
                Diagnostics.StorageCounts.OnMediaLoss(loss);
                if (policy == LogMediaErrorPolicy.Stop || !resumed)
                {
                    break;
                }
                lsn = next;
                continue;
            }
            if (length < 0)
            {
                break;
            }
            lsn += FrameLength(length);
        }
        if (pool.IsReadOnly || loss is not null || writeNothing)
        {
            // Nothing is written over a bad range: a store there raises SIGBUS on every open. Nor to a log
            // whose header has a read-only-compatible feature this library does not know.
            return lsn;
        }
        long clearEnd = Math.Min(durableTail + layout.Window, limit);
        for (long at = lsn; at < clearEnd;)
        {
            long physical = at % layout.Capacity;
            long run = Math.Min(clearEnd - at, layout.Capacity - physical);
            mapping.Fill(ringOffset + physical, run, 0, PmemCopyOptions.NoDrain);
            at += run;
        }
        mapping.Drain();
        if (lsn != durableTail)
        {
            mapping.Publish(offset + TailWordOffset, (ulong)lsn);
        }
        return lsn;
    }

    /// <summary>
    /// Inspects the log at <paramref name="offset"/> without changing anything (no recovery, no
    /// clearing): the header judged by the routine <see cref="Open(PmemPool, long)"/> runs, then every record from
    /// the head, through the tail word and on to where recovery would end. Media errors are read
    /// through the poison-safe path and reported, never raised as SIGBUS. This is what
    /// <c>dpmem check</c> reports.
    /// </summary>
    /// <param name="mapping">The pool's mapping (the pool need not be open, or even valid).</param>
    /// <param name="offset">Where the log is said to start.</param>
    /// <param name="dataOffset">Where the pool's data area starts (a log cannot start before it).</param>
    /// <returns>What was found; <see cref="LogInspection.Problems"/> is empty when the log is sound.</returns>
    public static LogInspection Inspect(DaxMapping mapping, long offset, long dataOffset)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        return LogInspection.Run(mapping, offset, dataOffset);
    }

    /// <summary>Appends one record durably.</summary>
    /// <param name="record">The payload, at most <see cref="MaxRecordLength"/> bytes.</param>
    /// <returns>The record's LSN; the record and every record before it are durable.</returns>
    /// <exception cref="LogFullException">There is no room; nothing was written.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The record is longer than <see cref="MaxRecordLength"/>.</exception>
    /// <exception cref="InvalidOperationException">The pool is read-only.</exception>
    public long Append(ReadOnlySpan<byte> record)
    {
        int frame = CheckRecord(record.Length);
        long lsn = Reserve(frame);
        try
        {
            WriteFrame(lsn, record);
            _mapping.Drain();
        }
        catch (Exception e)
        {
            _commit.Fail(e);
            _pool.ThrowIfDisposed();
            throw;
        }
        _commit.Commit(lsn, lsn + frame);
        Diagnostics.StorageCounts.OnAppend(1, frame);
        return lsn;
    }

    /// <summary>Appends one record made of several segments durably (copied once into a pooled buffer when it has more than one).</summary>
    /// <param name="record">The payload.</param>
    /// <returns>The record's LSN.</returns>
    /// <exception cref="LogFullException">There is no room; nothing was written.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The record is longer than <see cref="MaxRecordLength"/>.</exception>
    public long Append(in ReadOnlySequence<byte> record)
    {
        if (record.IsSingleSegment)
        {
            return Append(record.FirstSpan);
        }
        if (record.Length > MaxRecordLength)
        {
            throw new ArgumentOutOfRangeException(nameof(record), record.Length, string.Create(CultureInfo.InvariantCulture,
                $"A record holds at most {MaxRecordLength} bytes in this log."));
        }
        int length = (int)record.Length;
        byte[] rented = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            record.CopyTo(rented);
            return Append(rented.AsSpan(0, length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// Appends every record of <paramref name="batch"/> with one reservation, one copy and one publish;
    /// all of them are durable on return. Record <c>i</c> has LSN <c>result + batch.GetRecordOffset(i)</c>.
    /// </summary>
    /// <param name="batch">A non-empty batch; it is not changed in a way its user sees and can be cleared and reused.</param>
    /// <returns>The LSN of the first record.</returns>
    /// <exception cref="LogFullException">There is no room for the whole batch; nothing was written.</exception>
    /// <exception cref="ArgumentException">The batch is empty or larger than the capacity.</exception>
    public long Append(LogBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.HasOpenRecord)
        {
            throw new ArgumentException("The batch has a record begun with BeginRecord and not ended.", nameof(batch));
        }
        if (batch.Count == 0 || batch.Length > _capacity)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"A batch must hold 1 record or more and at most {_capacity} bytes of frames; it holds {batch.Count} records in {batch.Length} bytes."), nameof(batch));
        }
        ThrowIfDisposed();
        ThrowIfUnwritable();
        int total = batch.Length;
        long lsn = Reserve(total);
        try
        {
            Span<byte> frames = batch.Frames;
            for (int i = 0; i < batch.Count; i++)
            {
                int at = batch.GetRecordOffset(i);
                Span<byte> frame = frames[at..];
                int length = BinaryPrimitives.ReadInt32LittleEndian(frame);
                long recordLsn = lsn + at;
                BinaryPrimitives.WriteUInt32LittleEndian(frame[4..], _ring.Checksum(frame.Slice(FrameHeaderSize, length), recordLsn));
                BinaryPrimitives.WriteInt64LittleEndian(frame[8..], recordLsn);
            }
            // Whole lines (every frame is padded to them): non-temporal stores, as for one record.
            _ring.WriteRing(lsn, frames, PmemCopyOptions.NoDrain | PmemCopyOptions.NonTemporal);
            _mapping.Drain();
        }
        catch (Exception e)
        {
            _commit.Fail(e);
            _pool.ThrowIfDisposed();
            throw;
        }
        _commit.Commit(lsn, lsn + total);
        Diagnostics.StorageCounts.OnAppend(batch.Count, total);
        return lsn;
    }

    /// <summary>
    /// Reads the records from the head to the durable tail (as of this call), without allocating per
    /// record. Payloads are copied through the poison-safe copy (<see cref="LogReadMode.Copy"/>): a
    /// record on unreadable media is handled by <see cref="MediaErrorPolicy"/>, never a SIGBUS.
    /// </summary>
    /// <returns>A struct enumerator for <c>foreach</c>.</returns>
    /// <exception cref="ObjectDisposedException">The pool has been disposed.</exception>
    public LogReader ReadAll() => ReadAll(LogReadMode.Copy);

    /// <summary>Reads the records from the head to the durable tail (as of this call), handing out payloads as <paramref name="mode"/> says.</summary>
    /// <param name="mode"><see cref="LogReadMode.Copy"/> (poison-safe) or <see cref="LogReadMode.ZeroCopy"/> (spans over the mapping; poison there is a SIGBUS).</param>
    /// <returns>A struct enumerator for <c>foreach</c>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="mode"/> is not a defined value.</exception>
    /// <exception cref="ObjectDisposedException">The pool has been disposed.</exception>
    public LogReader ReadAll(LogReadMode mode)
    {
        CheckMode(mode);
        ThrowIfDisposed();
        return new(this, Head, Tail, firstIsBoundary: true, mode);
    }

    /// <summary>Reads the records from <paramref name="lsn"/> to the durable tail (as of this call), copying payloads through the poison-safe copy (<see cref="LogReadMode.Copy"/>).</summary>
    /// <param name="lsn">The LSN of a record (from <see cref="Append(ReadOnlySpan{byte})"/> or <see cref="LogRecord.NextLsn"/>), or the tail.</param>
    /// <returns>A struct enumerator for <c>foreach</c>.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The LSN was truncated or is past the tail.</exception>
    /// <exception cref="ArgumentException">The LSN is not a multiple of 64 (every frame starts on a cache line).</exception>
    public LogReader ReadFrom(long lsn) => ReadFrom(lsn, LogReadMode.Copy);

    /// <summary>Reads the records from <paramref name="lsn"/> to the durable tail (as of this call), handing out payloads as <paramref name="mode"/> says.</summary>
    /// <param name="lsn">The LSN of a record (from <see cref="Append(ReadOnlySpan{byte})"/> or <see cref="LogRecord.NextLsn"/>), or the tail.</param>
    /// <param name="mode"><see cref="LogReadMode.Copy"/> (poison-safe) or <see cref="LogReadMode.ZeroCopy"/> (spans over the mapping; poison there is a SIGBUS).</param>
    /// <returns>A struct enumerator for <c>foreach</c>.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The LSN was truncated or is past the tail, or <paramref name="mode"/> is not a defined value.</exception>
    /// <exception cref="ArgumentException">The LSN is not a multiple of 64 (every frame starts on a cache line).</exception>
    public LogReader ReadFrom(long lsn, LogReadMode mode)
    {
        CheckMode(mode);
        ThrowIfDisposed();
        long tail = Tail;
        CheckLsn(lsn, tail);
        return new LogReader(this, lsn, tail, firstIsBoundary: lsn == Head, mode);
    }

    private static void CheckMode(LogReadMode mode)
    {
        if (mode is not (LogReadMode.Copy or LogReadMode.ZeroCopy))
        {
            throw new ArgumentOutOfRangeException(nameof(mode), mode, "The read mode must be LogReadMode.Copy or LogReadMode.ZeroCopy.");
        }
    }

    /// <summary>
    /// Finds the first record at or after <paramref name="lsn"/>: what a truncation point or a
    /// reader's start is when only a position is known (a checkpoint's LSN, a byte count), not the
    /// LSN of a record. Records identify themselves (each frame carries its LSN and a checksum
    /// seeded with this log's nonce), so the search probes the cache-line positions (every frame starts on one) from
    /// <paramref name="lsn"/> on until a frame validates there: at most one record's length.
    /// </summary>
    /// <param name="lsn">Any position; one before the head means the head.</param>
    /// <returns>The LSN of that record, or <see cref="Tail"/> when no record starts at or after <paramref name="lsn"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="lsn"/> is past the tail.</exception>
    public long FindRecord(long lsn)
    {
        ThrowIfDisposed();
        long tail = Tail;
        if (lsn > tail)
        {
            throw new ArgumentOutOfRangeException(nameof(lsn), lsn, string.Create(CultureInfo.InvariantCulture, $"The LSN is past the tail {tail}."));
        }
        long head = Head;
        long at = lsn <= head ? head : (lsn + FrameAlignment - 1) & ~(long)(FrameAlignment - 1);
        _pool.EnterRead();
        try
        {
            for (; at < tail; at += FrameAlignment)
            {
                if (_ring.IsFrameAt(at, tail))
                {
                    return at;
                }
            }
            return tail;
        }
        finally
        {
            _pool.ExitRead();
        }
    }

    /// <summary>The payload length of the record at <paramref name="lsn"/>, after checking its frame.</summary>
    /// <param name="lsn">The record's LSN.</param>
    /// <returns>The payload length.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The LSN was truncated or is not before the tail.</exception>
    /// <exception cref="ArgumentException">No record starts at the LSN.</exception>
    /// <exception cref="LogCorruptException">The frame is damaged.</exception>
    /// <exception cref="LogMediaErrorException">The frame header lies on unreadable media (poison, or a truncated file); the process goes on.</exception>
    public int GetRecordLength(long lsn)
    {
        long tail = Tail;
        CheckRecordLsn(lsn, tail);
        _pool.EnterRead();
        try
        {
            return _ring.ReadFrameHeader(lsn, tail, lsn == Head, out _);
        }
        catch (PmemMediaErrorException e)
        {
            throw new LogMediaErrorException(Offset, lsn, "PmemLog.GetRecordLength", e);
        }
        finally
        {
            _pool.ExitRead();
        }
    }

    /// <summary>Copies the payload of the record at <paramref name="lsn"/> into <paramref name="destination"/>, after checking its frame and checksum.</summary>
    /// <param name="lsn">The record's LSN.</param>
    /// <param name="destination">At least <see cref="GetRecordLength"/> bytes.</param>
    /// <returns>The payload length.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The LSN was truncated or is not before the tail.</exception>
    /// <exception cref="ArgumentException">No record starts at the LSN, or <paramref name="destination"/> is too short.</exception>
    /// <exception cref="LogCorruptException">The frame is damaged.</exception>
    /// <exception cref="LogMediaErrorException">The record lies on unreadable media (poison, or a truncated file): the copy goes through <see cref="DaxMapping.ReadSafe"/>, no damaged byte is returned and the process goes on.</exception>
    public int Read(long lsn, Span<byte> destination)
    {
        long tail = Tail;
        CheckRecordLsn(lsn, tail);
        _pool.EnterRead();
        try
        {
            int length = _ring.ReadFrameHeader(lsn, tail, lsn == Head, out uint checksum);
            if (destination.Length < length)
            {
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                    $"The record at LSN {lsn} holds {length} bytes; the destination has {destination.Length}."), nameof(destination));
            }
            _ring.CopyFromRing(lsn + FrameHeaderSize, destination[..length]);
            _ring.VerifyChecksum(lsn, destination[..length], checksum);
            return length;
        }
        catch (PmemMediaErrorException e)
        {
            throw new LogMediaErrorException(Offset, lsn, "PmemLog.Read", e);
        }
        finally
        {
            _pool.ExitRead();
        }
    }

    /// <summary>
    /// Consumes the records before <paramref name="lsn"/>: the new head is published durably (one
    /// 8-byte publish) before their space can be reused. Readers must not be reading them.
    /// </summary>
    /// <param name="lsn">The LSN of a record, or the tail to truncate everything.</param>
    /// <exception cref="ArgumentOutOfRangeException">The LSN is before the head or past the tail.</exception>
    /// <exception cref="ArgumentException">No record starts at the LSN.</exception>
    /// <exception cref="InvalidOperationException">The pool is read-only.</exception>
    public void Truncate(long lsn)
    {
        ThrowIfDisposed();
        ThrowIfUnwritable();
        lock (_truncateGate)
        {
            long head = Head;
            if (lsn == head)
            {
                return;
            }
            long tail = Tail;
            CheckLsn(lsn, tail);
            if (lsn < tail)
            {
                _pool.EnterRead();
                try
                {
                    _ring.ReadFrameHeader(lsn, tail, boundaryKnown: false, out _);
                }
                finally
                {
                    _pool.ExitRead();
                }
            }
            // The tail word never falls behind the head word: recovery scans from the tail word,
            // and the ring before the head may be overwritten by then.
            if (_commit.Durable < lsn)
            {
                _commit.PersistTail(wait: true);
            }
            _mapping.Publish(Offset + HeadWordOffset, (ulong)lsn);
            _commit.SetHead(lsn);
        }
    }

    // ---- the append protocol, step by step (internal so the simulator tests can interleave appenders) ----

    /// <summary>Step 1: reserve (see <see cref="LogCommit.Reserve"/>).</summary>
    internal long Reserve(int frameBytes) => _commit.Reserve(frameBytes);

    /// <summary>Step 2: copy the frame with non-temporal stores, not drained (see <see cref="LogRing.WriteFrame"/>).</summary>
    internal void WriteFrame(long lsn, ReadOnlySpan<byte> payload) => _ring.WriteFrame(lsn, payload);

    /// <summary>Step 2b: drain this thread's stores.</summary>
    internal void DrainWrites() => _mapping.Drain();

    /// <summary>
    /// Step 3 without waiting: what <see cref="LogCommit.Commit"/> runs (the completion, or the
    /// announcement of a drained record that waits for its predecessors, then the lazy tail
    /// persist by whoever moved the cursor). True when the record is acknowledged.
    /// </summary>
    internal bool TryComplete(long start, long end)
    {
        if (!_commit.TryComplete(start, end, out long completed))
        {
            return false;
        }
        if (completed != 0)
        {
            _commit.AfterComplete(completed);
        }
        return true;
    }

    internal LogRing Ring => _ring;

    /// <summary>The ring's static layout (a reader's skip probes frames with it).</summary>
    internal LogLayout Layout => new(_capacity, _ring.Nonce, 0);

    internal int CheckRecord(int length)
    {
        ThrowIfDisposed();
        if ((uint)length > (uint)MaxRecordLength)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, string.Create(CultureInfo.InvariantCulture,
                $"A record holds at most {MaxRecordLength} bytes in this log."));
        }
        ThrowIfUnwritable();
        return FrameLength(length);
    }

    /// <summary>The pool the log lives in (a reader enters it around its reads).</summary>
    internal PmemPool Pool => _pool;

    internal void CheckReaderPosition(long lsn)
    {
        if (lsn < Head)
        {
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"The log was truncated to {Head} past the reader's position {lsn}."));
        }
    }

    private void CheckLsn(long lsn, long tail)
    {
        long head = Head;
        if (lsn < head || lsn > tail)
        {
            throw new ArgumentOutOfRangeException(nameof(lsn), lsn, string.Create(CultureInfo.InvariantCulture,
                $"The LSN must lie in [head, tail] = [{head}, {tail}]."));
        }
        if (lsn % FrameAlignment != 0)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"The LSN {lsn} is not a multiple of {FrameAlignment}, so no record starts there."), nameof(lsn));
        }
    }

    private void CheckRecordLsn(long lsn, long tail)
    {
        CheckLsn(lsn, tail);
        if (lsn == tail)
        {
            throw new ArgumentOutOfRangeException(nameof(lsn), lsn, string.Create(CultureInfo.InvariantCulture,
                $"The LSN {lsn} is the tail: no record there yet."));
        }
    }

    /// <summary>
    /// Persists the tail word (so that the next open scans nothing) and ends this instance's use:
    /// later calls throw <see cref="ObjectDisposedException"/>. The records stay in the pool; open
    /// the log again with <see cref="Open(PmemPool, long)"/>. Appends racing Dispose are a caller's bug: each either
    /// completes (and is durable) or throws. A read-only, failed or already disposed pool's log is
    /// only marked disposed.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        if (IsReadOnly || _commit.HasFailed || !_pool.TryEnterRead())
        {
            return;
        }
        try
        {
            _commit.PersistTail(wait: true);
        }
        finally
        {
            _pool.ExitRead();
        }
    }

    private void ThrowIfUnwritable()
    {
        _pool.ThrowIfUnwritable();
        if (_recoveryLoss is not null)
        {
            ThrowMediaReadOnly();
        }
        if (_readOnlyReason is not null)
        {
            ThrowFeatureReadOnly();
        }
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void ThrowFeatureReadOnly() => throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
        $"The log at offset {Offset} is open read-only: {_readOnlyReason}."));

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void ThrowMediaReadOnly() => throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
        $"The log at offset {Offset} is open read-only: recovery met unreadable media ({_recoveryLoss}). Clear the bad range (dpmem check --repair on fsdax; ndctl clear-errors on device-DAX) and open the log again, or copy its records to a new log."));

    private void ThrowIfDisposed()
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            ThrowLogDisposed();
        }
        _pool.ThrowIfDisposed();
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void ThrowLogDisposed() => throw new ObjectDisposedException(nameof(PmemLog),
        string.Create(CultureInfo.InvariantCulture, $"The log at offset {Offset} has been disposed; open it again with PmemLog.Open."));

    /// <summary>Throws the pool's <see cref="ObjectDisposedException"/> if it was disposed: what any operation racing its Dispose reports.</summary>
    private void ThrowIfPoolDisposed() => _pool.ThrowIfDisposed();


}
