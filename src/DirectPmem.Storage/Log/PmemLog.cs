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
/// share one 8-byte durable-tail publish (group commit). An append returns only when its record
/// and every record before it are durable.
/// </summary>
/// <remarks>
/// <para><b>Layout.</b> At <see cref="Offset"/> (4 KiB aligned, in the pool's data area) a 4 KiB
/// header: magic "DPMLOG01", version, ring capacity and a checksum of those (bytes 0-47), the durable
/// tail LSN (8-byte word at +64) and the head LSN (8-byte word at +128, its own cache line). The ring
/// of <see cref="Capacity"/> bytes follows. An LSN is a byte position that only grows; it lives at
/// ring offset LSN mod capacity. A record is a frame of 16 bytes (payload length u32, checksum u32 =
/// low half of XxHash3 of the payload seeded with the LSN and length, the frame's own LSN u64) and the
/// payload, padded to 16 bytes, or to 64 (a cache line) when the frame is longer than 256 bytes
/// (<see cref="FrameLength"/>), so that consecutive long records stay line-aligned. Format version 2;
/// a version-1 log (16-byte padding throughout) is refused. A frame may wrap around the end of the ring.</para>
/// <para><b>Append protocol</b> (who does what, and what a crash at each step leaves):</para>
/// <list type="number">
/// <item>Reserve: a compare-and-swap advances the volatile reservation cursor by the frame size,
/// if the ring has room between the durable head and the new end (else <see cref="LogFullException"/>,
/// nothing reserved). No lock. A crash leaves nothing: the tail was not moved.</item>
/// <item>Copy: the appender writes its frame with the copy engine, without a drain, then drains
/// (SFENCE) its own stores. A short frame is staged on the stack and written at once (temporal
/// stores + flush). A long frame that starts on a cache line is written as whole lines with
/// non-temporal stores only (middle lines from the caller's memory, the last staged with zero
/// padding, then the first with the header). A long frame that does not (it follows a short
/// record) is written as the payload from a cache-line boundary on, straight from the caller's
/// memory, then the header with the payload's first bytes. Appenders copy in parallel. A crash leaves bytes after the durable
/// tail, which recovery ignores and later appends overwrite.</item>
/// <item>Complete: the appender waits until the completion cursor reaches its start (every
/// earlier record is durable) and moves it to its end with a plain store. Completion is in LSN
/// order, so the cursor always marks a durable prefix.</item>
/// <item>Publish (group commit): an appender whose end the published cursor already covers returns
/// having only read it. Otherwise it tries to become the publisher: a compare-and-swap sets the
/// publishing flag (bit 0 of the volatile published cursor; tails are multiples of 16). The
/// publisher reads the completion cursor and publishes it as the durable tail with one
/// failure-atomic 8-byte store + flush + drain, covering every record completed so far (its own
/// included), then one plain store of the published cursor shows the new tail and clears the
/// flag. Before it reads the completion cursor, a publisher that sees appenders still copying
/// (reserved beyond the completion cursor) waits for them up to about 2 us, so that its publish
/// covers them too. The others wait and look again. A crash before the publish leaves the old tail (the
/// records are not acknowledged and are ignored); after it, the new tail, whose records were all
/// durable first.</item>
/// <item>Return: the append returns its LSN once the published tail covers its end.</item>
/// </list>
/// <para>A waiting appender (steps 3 and 4) spins with PAUSE for about 1 us, then yields the CPU
/// for about 1 ms, then blocks until a completion or a publish wakes it: an appender that makes
/// no progress for that long is off the CPU, and a spinning waiter would only keep it off. An
/// appender whose copy failed marks the log failed and wakes the waiters, which then throw.</para>
/// <para><b>Truncate</b> publishes a new head (one 8-byte publish) before the space is reused, so
/// a crash never leaves a head pointing at overwritten frames. <b>Recovery</b> on open reads the
/// head and tail words; everything after the tail is ignored and overwritten. Reads check every
/// frame (LSN, length within the tail, checksum) and never return a damaged one.</para>
/// <para>The log is circular: appends fail with <see cref="LogFullException"/> when the records
/// between head and tail plus the new ones would exceed <see cref="Capacity"/>; truncate to make room.</para>
/// <para><b>Disposal.</b> The log belongs to its pool. Every operation racing the pool's
/// <see cref="PmemPool.Dispose"/> completes (an append that returns is durable) or throws
/// <see cref="ObjectDisposedException"/> naming the pool, never a full log or a damaged one; reads
/// in progress finish before the pool unmaps. After the pool is disposed every operation throws it,
/// even when the mapping was the caller's and is still mapped.</para>
/// </remarks>
public sealed class PmemLog
{
    /// <summary>The size of a frame header: length, checksum and LSN.</summary>
    public const int FrameHeaderSize = 16;

    /// <summary>Frames start and end on multiples of this.</summary>
    public const int FrameAlignment = 16;

    /// <summary>The size of the log header before the ring.</summary>
    public const int HeaderLength = 4096;

    internal const int MagicOffset = 0;
    internal const int VersionOffset = 8;
    internal const int CapacityOffset = 16;
    internal const int ChecksumOffset = 40;
    internal const int StaticLength = 40;
    internal const int TailWordOffset = 64;
    internal const int HeadWordOffset = 128;
    internal const uint CurrentVersion = 2;

    internal static ReadOnlySpan<byte> Magic => "DPMLOG01"u8;

    private readonly PmemPool _pool;
    private readonly DaxMapping _mapping;
    private readonly long _ringOffset;
    private readonly long _capacity;
    private readonly Lock _truncateGate = new();
    private readonly object _sleepGate = new();
    private Cursors _cursors;
    private Exception? _failure;

    // Bit 0 of Cursors.Published (tails are multiples of 16): a publisher holds the publish.
    private const long PublishingFlag = 1;

    // Frames up to this length are staged whole on the stack and written with one (temporal) copy;
    // longer ones stream their payload straight from the caller's memory. The copy engine's
    // non-temporal threshold is 256 bytes (PMDK's).
    private const int StagedFrameLimit = 256;
    private const int CacheLine = 64;

    // How long a waiting appender spins (PAUSE) before it yields, and yields before it blocks. A
    // predecessor that is running finishes its copy in well under a microsecond at these sizes;
    // with more appenders than CPUs one that is not done is usually off the CPU, and spinning
    // keeps it off: the 4- and 8-thread concurrency tests on 2 CPUs ran 1M appends in 15 and 18 s
    // with a 20 us spin, 6 and 7.5 s with 3 us, 3.8 and 6 s with 1 us (15:34-15:36 UTC, load 3-4).
    private static readonly long s_spinTicks = Stopwatch.Frequency / 1_000_000; // 1 us
    private static readonly long s_yieldTicks = Stopwatch.Frequency / 1_000; // 1 ms
    private const int SleepTimeoutMilliseconds = 1;
    private static readonly long s_followerTicks = Stopwatch.Frequency / 500_000; // 2 us

    [StructLayout(LayoutKind.Explicit, Size = 384)]
    private struct Cursors
    {
        // One cache line each (and a line of padding on either side): appenders on different
        // cores write Reserved, Completed and Published; Head and Sleepers are read on every
        // append and written rarely, so they must not share a line with a written cursor.
        [FieldOffset(64)] public long Reserved;
        [FieldOffset(128)] public long Completed;
        [FieldOffset(192)] public long Published;
        [FieldOffset(256)] public long Head;
        [FieldOffset(320)] public int Sleepers;
    }

    private PmemLog(PmemPool pool, long offset, long capacity, long head, long tail)
    {
        _pool = pool;
        _mapping = pool.Mapping;
        Offset = offset;
        _ringOffset = offset + HeaderLength;
        _capacity = capacity;
        _cursors.Head = head;
        _cursors.Reserved = tail;
        _cursors.Completed = tail;
        _cursors.Published = tail;
        Diagnostics.StorageCounts.Touch();
    }

    /// <summary>Where the log starts in the pool.</summary>
    public long Offset { get; }

    /// <summary>The log's length in the pool: header and ring.</summary>
    public long Length => HeaderLength + _capacity;

    /// <summary>The ring capacity in bytes (frames included).</summary>
    public long Capacity => _capacity;

    /// <summary>The LSN of the first live record (everything before it was truncated).</summary>
    public long Head => Volatile.Read(ref _cursors.Head);

    /// <summary>The durable tail: the LSN after the last acknowledged record.</summary>
    public long Tail => Volatile.Read(ref _cursors.Published) & ~PublishingFlag;

    /// <summary>The bytes free for appends now (frames included).</summary>
    public long FreeBytes => _capacity - (Volatile.Read(ref _cursors.Reserved) - Head);

    /// <summary>The largest payload one record can have: the capacity minus one frame header.</summary>
    public int MaxRecordLength => (int)Math.Min(int.MaxValue - 2 * CacheLine, _capacity - FrameHeaderSize);

    /// <summary>
    /// The bytes a record of <paramref name="payloadLength"/> takes in the ring: header, payload,
    /// padding. A frame of at most 256 bytes is padded to a multiple of 16; a longer one to a
    /// multiple of 64 (a cache line), so that consecutive long records stay line-aligned and are
    /// written as whole lines.
    /// </summary>
    /// <param name="payloadLength">The payload length.</param>
    /// <returns>The frame length, a multiple of <see cref="FrameAlignment"/>.</returns>
    public static int FrameLength(int payloadLength)
    {
        int frame = (FrameHeaderSize + payloadLength + FrameAlignment - 1) & ~(FrameAlignment - 1);
        return frame <= StagedFrameLimit ? frame : (FrameHeaderSize + payloadLength + CacheLine - 1) & ~(CacheLine - 1);
    }

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
    public static PmemLog Create(PmemPool pool, long offset, long length)
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
        long capacity = length - HeaderLength;
        byte[] header = new byte[HeaderLength];
        Magic.CopyTo(header);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(VersionOffset), CurrentVersion);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(CapacityOffset), capacity);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(ChecksumOffset), XxHash3.HashToUInt64(header.AsSpan(0, StaticLength)));
        pool.Mapping.Write(header, offset);
        return new PmemLog(pool, offset, capacity, head: 0, tail: 0);
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
    public static PmemLog Open(PmemPool pool, long offset)
    {
        ArgumentNullException.ThrowIfNull(pool);
        // The header is read through spans: inside the pool's read guard, so a Dispose racing the open waits.
        pool.EnterRead();
        try
        {
            return OpenCore(pool, offset);
        }
        finally
        {
            pool.ExitRead();
        }
    }

    private static PmemLog OpenCore(PmemPool pool, long offset)
    {
        if (offset % HeaderLength != 0 || offset < pool.DataOffset || offset > pool.Size - 2 * HeaderLength)
        {
            throw new LogFormatException(LogHeaderField.Location, string.Create(CultureInfo.InvariantCulture,
                $"A log cannot start at {offset}: it must be a multiple of {HeaderLength} in the data area [{pool.DataOffset}, {pool.Size - 2 * HeaderLength}]."));
        }
        ReadOnlySpan<byte> header = pool.Mapping.GetReadOnlySpan(offset, HeaderLength);
        if (!header[..8].SequenceEqual(Magic))
        {
            throw new LogFormatException(LogHeaderField.Magic, string.Create(CultureInfo.InvariantCulture,
                $"No log at offset {offset}: the magic \"DPMLOG01\" is missing."));
        }
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(header[VersionOffset..]);
        if (version != CurrentVersion)
        {
            throw new LogFormatException(LogHeaderField.Version, string.Create(CultureInfo.InvariantCulture,
                $"The log at {offset} has format version {version}; this library reads version {CurrentVersion}."));
        }
        if (BinaryPrimitives.ReadUInt64LittleEndian(header[ChecksumOffset..]) != XxHash3.HashToUInt64(header[..StaticLength]))
        {
            throw new LogFormatException(LogHeaderField.Checksum, string.Create(CultureInfo.InvariantCulture,
                $"The log header at {offset} fails its checksum."));
        }
        long capacity = BinaryPrimitives.ReadInt64LittleEndian(header[CapacityOffset..]);
        if (capacity < HeaderLength || capacity % HeaderLength != 0 || capacity > pool.Size - offset - HeaderLength)
        {
            throw new LogFormatException(LogHeaderField.Capacity, string.Create(CultureInfo.InvariantCulture,
                $"The log's capacity {capacity} is not a positive multiple of {HeaderLength} that fits in the pool after {offset}."));
        }
        long tail = (long)pool.Mapping.GetReadOnlyRef<ulong>(offset + TailWordOffset);
        long head = (long)pool.Mapping.GetReadOnlyRef<ulong>(offset + HeadWordOffset);
        if (tail < 0 || tail % FrameAlignment != 0)
        {
            throw new LogFormatException(LogHeaderField.Tail, string.Create(CultureInfo.InvariantCulture,
                $"The published tail {tail} is not a non-negative multiple of {FrameAlignment}."));
        }
        if (head < 0 || head % FrameAlignment != 0 || head > tail || tail - head > capacity)
        {
            throw new LogFormatException(LogHeaderField.Head, string.Create(CultureInfo.InvariantCulture,
                $"The published head {head} must be a multiple of {FrameAlignment} in [tail - capacity, tail] = [{tail - capacity}, {tail}]."));
        }
        return new PmemLog(pool, offset, capacity, head, tail);
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
            Fail(e);
            ThrowIfPoolDisposed();
            throw;
        }
        Commit(lsn, lsn + frame);
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
        _pool.ThrowIfUnwritable();
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
                BinaryPrimitives.WriteUInt32LittleEndian(frame[4..], Checksum(frame.Slice(FrameHeaderSize, length), recordLsn));
                BinaryPrimitives.WriteInt64LittleEndian(frame[8..], recordLsn);
            }
            WriteRing(lsn, frames);
            _mapping.Drain();
        }
        catch (Exception e)
        {
            Fail(e);
            ThrowIfPoolDisposed();
            throw;
        }
        Commit(lsn, lsn + total);
        Diagnostics.StorageCounts.OnAppend(batch.Count, total);
        return lsn;
    }

    /// <summary>Reads the records from the head to the durable tail (as of this call), without allocating per record.</summary>
    /// <returns>A struct enumerator for <c>foreach</c>.</returns>
    /// <exception cref="ObjectDisposedException">The pool has been disposed.</exception>
    public LogReader ReadAll()
    {
        _pool.ThrowIfDisposed();
        return new(this, Head, Tail, firstIsBoundary: true);
    }

    /// <summary>Reads the records from <paramref name="lsn"/> to the durable tail (as of this call).</summary>
    /// <param name="lsn">The LSN of a record (from <see cref="Append(ReadOnlySpan{byte})"/> or <see cref="LogRecord.NextLsn"/>), or the tail.</param>
    /// <returns>A struct enumerator for <c>foreach</c>.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The LSN was truncated or is past the tail.</exception>
    /// <exception cref="ArgumentException">The LSN is not a multiple of 16.</exception>
    public LogReader ReadFrom(long lsn)
    {
        _pool.ThrowIfDisposed();
        long tail = Tail;
        CheckLsn(lsn, tail);
        return new LogReader(this, lsn, tail, firstIsBoundary: lsn == Head);
    }

    /// <summary>The payload length of the record at <paramref name="lsn"/>, after checking its frame.</summary>
    /// <param name="lsn">The record's LSN.</param>
    /// <returns>The payload length.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The LSN was truncated or is not before the tail.</exception>
    /// <exception cref="ArgumentException">No record starts at the LSN.</exception>
    /// <exception cref="LogCorruptException">The frame is damaged.</exception>
    public int GetRecordLength(long lsn)
    {
        long tail = Tail;
        CheckRecordLsn(lsn, tail);
        _pool.EnterRead();
        try
        {
            return ReadFrameHeader(lsn, tail, lsn == Head);
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
    public int Read(long lsn, Span<byte> destination)
    {
        long tail = Tail;
        CheckRecordLsn(lsn, tail);
        _pool.EnterRead();
        try
        {
            int length = ReadFrameHeader(lsn, tail, lsn == Head);
            if (destination.Length < length)
            {
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                    $"The record at LSN {lsn} holds {length} bytes; the destination has {destination.Length}."), nameof(destination));
            }
            CopyFromRing(lsn + FrameHeaderSize, destination[..length]);
            VerifyChecksum(lsn, destination[..length]);
            return length;
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
        _pool.ThrowIfUnwritable();
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
                    ReadFrameHeader(lsn, tail, boundaryKnown: false);
                }
                finally
                {
                    _pool.ExitRead();
                }
            }
            _mapping.Publish(Offset + HeadWordOffset, (ulong)lsn);
            Volatile.Write(ref _cursors.Head, lsn);
        }
    }

    // ---- the append protocol, step by step (internal so the simulator tests can interleave appenders) ----

    internal int CheckRecord(int length)
    {
        if ((uint)length > (uint)MaxRecordLength)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, string.Create(CultureInfo.InvariantCulture,
                $"A record holds at most {MaxRecordLength} bytes in this log."));
        }
        _pool.ThrowIfUnwritable();
        return FrameLength(length);
    }

    /// <summary>Step 1: lock-free reservation of <paramref name="frameBytes"/> at the volatile reservation cursor.</summary>
    internal long Reserve(int frameBytes)
    {
        ThrowIfFailed();
        while (true)
        {
            long start = Volatile.Read(ref _cursors.Reserved);
            long end = start + frameBytes;
            long head = Volatile.Read(ref _cursors.Head);
            if (end - head > _capacity)
            {
                // A disposed pool is never reported as a full log.
                ThrowIfPoolDisposed();
                throw new LogFullException(frameBytes, _capacity - (start - head), _capacity);
            }
            if (Interlocked.CompareExchange(ref _cursors.Reserved, end, start) == start)
            {
                return start;
            }
        }
    }

    /// <summary>Step 2: copy the frame (flushed, not drained).</summary>
    /// <remarks>
    /// A short frame is staged whole on the stack and written with one copy. A longer one is
    /// written in two: the payload from the next cache-line boundary of the ring on, straight from
    /// the caller's memory, line-aligned at the destination so that the copy engine streams it
    /// with non-temporal stores (no second copy of the payload); then, from a small stack buffer,
    /// the header (its checksum computed while those stores drain) with the payload's first bytes
    /// up to that boundary. The padding after the payload is not written: readers skip it by the length.
    /// </remarks>
    [SkipLocalsInit]
    internal void WriteFrame(long lsn, ReadOnlySpan<byte> payload)
    {
        int frameLength = FrameLength(payload.Length);
        if (frameLength <= StagedFrameLimit)
        {
            Span<byte> frame = stackalloc byte[StagedFrameLimit];
            frame = frame[..frameLength];
            WriteFrameHeader(frame, payload.Length, Checksum(payload, lsn), lsn);
            payload.CopyTo(frame[FrameHeaderSize..]);
            frame[(FrameHeaderSize + payload.Length)..].Clear();
            WriteRing(lsn, frame);
        }
        else if ((lsn & (CacheLine - 1)) == 0)
        {
            WriteAlignedLongFrame(lsn, payload);
        }
        else
        {
            // LSN and ring position agree modulo the line size: the ring starts 4 KiB aligned and its capacity is a multiple of 4 KiB.
            int lead = (int)((CacheLine - ((lsn + FrameHeaderSize) & (CacheLine - 1))) & (CacheLine - 1));
            // The payload's bulk goes first: its non-temporal stores are on their way to memory
            // while the checksum is computed (over the payload, still in the cache); the first
            // line with the header follows, and the caller's drain covers both.
            WriteRing(lsn + FrameHeaderSize + lead, payload[lead..]);
            Span<byte> first = stackalloc byte[CacheLine];
            first = first[..(FrameHeaderSize + lead)];
            WriteFrameHeader(first, payload.Length, Checksum(payload, lsn), lsn);
            payload[..lead].CopyTo(first[FrameHeaderSize..]);
            WriteRing(lsn, first);
        }
    }

    /// <summary>
    /// A long frame that starts on a cache line (its length is a multiple of 64, so it ends on one
    /// too) is written as whole lines with non-temporal stores only, no flush of a partial line:
    /// the middle lines straight from the caller's memory, the last one staged on the stack with
    /// the payload's tail and zero padding, then (its checksum computed while those stores drain)
    /// the first line with the header and the payload's first 48 bytes. LSN and ring position
    /// agree modulo the line size (the ring starts 4 KiB aligned, its capacity is a multiple of
    /// 4 KiB), so a frame that wraps splits at a line boundary.
    /// </summary>
    [SkipLocalsInit]
    private void WriteAlignedLongFrame(long lsn, ReadOnlySpan<byte> payload)
    {
        const int lead = CacheLine - FrameHeaderSize;
        const PmemCopyOptions streamed = PmemCopyOptions.NoDrain | PmemCopyOptions.NonTemporal;
        int last = (payload.Length - lead) & (CacheLine - 1);
        int middle = payload.Length - lead - last;
        if (middle != 0)
        {
            WriteRing(lsn + CacheLine, payload.Slice(lead, middle), streamed);
        }
        Span<byte> line = stackalloc byte[CacheLine];
        if (last != 0)
        {
            payload[^last..].CopyTo(line);
            line[last..].Clear();
            WriteRing(lsn + CacheLine + middle, line, streamed);
        }
        WriteFrameHeader(line, payload.Length, Checksum(payload, lsn), lsn);
        payload[..lead].CopyTo(line[FrameHeaderSize..]);
        WriteRing(lsn, line, streamed);
    }

    /// <summary>Step 2b: drain this thread's stores.</summary>
    internal void DrainWrites() => _mapping.Drain();

    /// <summary>Step 3 without waiting: move the completion cursor from <paramref name="start"/> to <paramref name="end"/> if every earlier record completed.</summary>
    internal bool TryComplete(long start, long end)
    {
        if (Volatile.Read(ref _cursors.Completed) != start)
        {
            return false;
        }
        Complete(end);
        return true;
    }

    // Only the appender whose record starts at the completion cursor moves it: a plain store. (No
    // locked instruction here or at the publish's release: right after a flush and drain, one
    // waits for the write-backs on this machine.)
    private void Complete(long end)
    {
        Volatile.Write(ref _cursors.Completed, end);
        WakeSleepers();
    }

    /// <summary>Step 4 without waiting: if no one else is publishing, publish the completion cursor as the tail. Returns the published tail.</summary>
    internal long TryPublish()
    {
        long published = Volatile.Read(ref _cursors.Published);
        if ((published & PublishingFlag) == 0 && Interlocked.CompareExchange(ref _cursors.Published, published | PublishingFlag, published) == published)
        {
            return PublishHeld(published);
        }
        return published & ~PublishingFlag;
    }

    /// <summary>Step 4 by the holder of the publishing flag: one 8-byte publish of the completion cursor (covering every record completed so far), then the release of the flag.</summary>
    private long PublishHeld(long previous)
    {
        long tail = previous;
        try
        {
            long completed = Volatile.Read(ref _cursors.Completed);
            if (completed > previous)
            {
                // The group commit: this one publish makes the records [previous, completed) acknowledged.
                Diagnostics.StorageCounts.OnPublish(_pool, _ringOffset, _capacity, previous, completed);
                _mapping.Publish(Offset + TailWordOffset, (ulong)completed);
                tail = completed;
            }
        }
        catch (Exception e)
        {
            Fail(e);
            ThrowIfPoolDisposed();
            throw;
        }
        finally
        {
            // One plain store releases the flag and shows the new tail (only the flag's holder writes the cursor).
            Volatile.Write(ref _cursors.Published, tail);
            WakeSleepers();
        }
        return tail;
    }

    /// <summary>Steps 3 to 5 for the record [<paramref name="start"/>, <paramref name="end"/>), whose copy is drained.</summary>
    private void Commit(long start, long end)
    {
        if (Volatile.Read(ref _cursors.Completed) != start)
        {
            WaitForPredecessors(start);
        }
        Complete(end);
        // Someone may already have published past this record (group commit): then it returns
        // having only read the published cursor.
        long published = Volatile.Read(ref _cursors.Published);
        if ((published & ~PublishingFlag) < end)
        {
            PublishOrWait(end);
        }
    }

    private void WaitForPredecessors(long start)
    {
        Backoff backoff = default;
        while (Volatile.Read(ref _cursors.Completed) != start)
        {
            backoff.Wait(this, start, forPublish: false);
        }
    }

    private void PublishOrWait(long end)
    {
        Backoff backoff = default;
        while (true)
        {
            long published = Volatile.Read(ref _cursors.Published);
            if ((published & ~PublishingFlag) >= end)
            {
                return;
            }
            if ((published & PublishingFlag) == 0)
            {
                if (Interlocked.CompareExchange(ref _cursors.Published, published | PublishingFlag, published) == published)
                {
                    // This record is completed, so this publish covers it; let it cover the
                    // appenders copying right now too, if they finish within a moment.
                    WaitForFollowers();
                    PublishHeld(published);
                    return;
                }
                continue;
            }
            backoff.Wait(this, end, forPublish: true);
        }
    }

    /// <summary>
    /// Group commit proper: the publisher waits (PAUSE, at most about 2 us, the time of a copy)
    /// for the appenders that reserved space before it took the flag to complete, so that its one
    /// publish covers them too and they return without publishing. Alone, it does not wait.
    /// </summary>
    private void WaitForFollowers()
    {
        long reserved = Volatile.Read(ref _cursors.Reserved);
        if (Volatile.Read(ref _cursors.Completed) >= reserved)
        {
            return;
        }
        long since = Stopwatch.GetTimestamp();
        int rounds = 0;
        while (Volatile.Read(ref _cursors.Completed) < reserved)
        {
            if ((++rounds & 15) == 0 && Stopwatch.GetTimestamp() - since > s_followerTicks)
            {
                return;
            }
            Pause();
        }
    }

    /// <summary>
    /// Waiting for another appender: PAUSE while it is likely running (about 1 us), then yield
    /// the CPU (about 1 ms more), then block until a completion or a publish wakes this thread,
    /// so that a predecessor that was descheduled gets a CPU back instead of competing with a
    /// spinner (on a 2-CPU machine a spinning waiter takes the CPU the stalled appender needs).
    /// </summary>
    private struct Backoff
    {
        private long _since;
        private int _rounds;
        private int _phase;

        public void Wait(PmemLog log, long value, bool forPublish)
        {
            log.ThrowIfFailed();
            if (_phase == 0)
            {
                if (_rounds++ == 0)
                {
                    _since = Stopwatch.GetTimestamp();
                }
                else if ((_rounds & 63) == 0 && Stopwatch.GetTimestamp() - _since > s_spinTicks)
                {
                    _phase = 1;
                }
                Pause();
            }
            else if (_phase == 1)
            {
                if (Stopwatch.GetTimestamp() - _since > s_spinTicks + s_yieldTicks)
                {
                    _phase = 2;
                }
                Thread.Yield();
            }
            else
            {
                log.Sleep(value, forPublish);
            }
        }
    }

    /// <summary>
    /// Blocks until a completion or publish (or a failure) wakes the thread. The sleeper counts
    /// itself, then looks at the cursors once more before it waits; a waker stores its cursor, then
    /// reads the count. The two plain store-then-load sequences may cross (x86 lets a load pass an
    /// earlier store), and a wake-up missed that way costs at most the 1 ms timeout; a locked
    /// instruction on every append to close that gap would cost more than it saves.
    /// </summary>
    private void Sleep(long value, bool forPublish)
    {
        lock (_sleepGate)
        {
            Interlocked.Increment(ref _cursors.Sleepers);
            try
            {
                if (!Ready(value, forPublish))
                {
                    Monitor.Wait(_sleepGate, SleepTimeoutMilliseconds);
                }
            }
            finally
            {
                Interlocked.Decrement(ref _cursors.Sleepers);
            }
        }
    }

    // What a waiter waits for: the completion cursor at its start (step 3), or its end published or the publishing flag free (step 4); or a failure.
    private bool Ready(long value, bool forPublish)
    {
        if (Volatile.Read(ref _failure) is not null)
        {
            return true;
        }
        if (!forPublish)
        {
            return Volatile.Read(ref _cursors.Completed) == value;
        }
        long published = Volatile.Read(ref _cursors.Published);
        return (published & ~PublishingFlag) >= value || (published & PublishingFlag) == 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WakeSleepers()
    {
        if (Volatile.Read(ref _cursors.Sleepers) != 0)
        {
            WakeSleepersSlow();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void WakeSleepersSlow()
    {
        lock (_sleepGate)
        {
            Monitor.PulseAll(_sleepGate);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Pause()
    {
        if (X86Base.IsSupported)
        {
            X86Base.Pause();
        }
        else
        {
            Thread.SpinWait(1);
        }
    }

    private void WriteRing(long lsn, ReadOnlySpan<byte> data, PmemCopyOptions flags = PmemCopyOptions.NoDrain)
    {
        long physical = lsn % _capacity;
        int first = (int)Math.Min(data.Length, _capacity - physical);
        _mapping.Write(data[..first], _ringOffset + physical, flags);
        if (first < data.Length)
        {
            _mapping.Write(data[first..], _ringOffset, flags);
        }
    }

    internal void CopyFromRing(long lsn, Span<byte> destination)
    {
        long physical = lsn % _capacity;
        int first = (int)Math.Min(destination.Length, _capacity - physical);
        _mapping.GetReadOnlySpan(_ringOffset + physical, first).CopyTo(destination);
        if (first < destination.Length)
        {
            _mapping.GetReadOnlySpan(_ringOffset, destination.Length - first).CopyTo(destination[first..]);
        }
    }

    /// <summary>The payload as a span into the ring when it does not wrap, else copied into <paramref name="scratch"/>.</summary>
    internal ReadOnlySpan<byte> GetPayload(long lsn, int length, scoped ref byte[]? scratch)
    {
        long physical = (lsn + FrameHeaderSize) % _capacity;
        if (physical + length <= _capacity)
        {
            return _mapping.GetReadOnlySpan(_ringOffset + physical, length);
        }
        if (scratch is null || scratch.Length < length)
        {
            if (scratch is not null)
            {
                ArrayPool<byte>.Shared.Return(scratch);
            }
            scratch = ArrayPool<byte>.Shared.Rent(length);
        }
        Span<byte> copy = scratch.AsSpan(0, length);
        CopyFromRing(lsn + FrameHeaderSize, copy);
        return copy;
    }

    /// <summary>Checks the frame header at <paramref name="lsn"/> (LSN, length within <paramref name="end"/>) and returns the payload length.</summary>
    internal int ReadFrameHeader(long lsn, long end, bool boundaryKnown)
    {
        if (end - lsn < FrameHeaderSize)
        {
            throw new LogCorruptException(lsn, string.Create(CultureInfo.InvariantCulture,
                $"The frame at LSN {lsn} would run past the durable tail {end}."));
        }
        ReadOnlySpan<byte> header = _mapping.GetReadOnlySpan(_ringOffset + lsn % _capacity, FrameHeaderSize);
        long storedLsn = BinaryPrimitives.ReadInt64LittleEndian(header[8..]);
        if (storedLsn != lsn)
        {
            if (!boundaryKnown)
            {
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                    $"No record starts at LSN {lsn} (the frame there carries LSN {storedLsn}); use an LSN returned by Append or LogRecord.NextLsn."), nameof(lsn));
            }
            throw new LogCorruptException(lsn, string.Create(CultureInfo.InvariantCulture,
                $"The frame at LSN {lsn} carries LSN {storedLsn}: the durable log is damaged."));
        }
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(header);
        if (length > (ulong)(end - lsn - FrameHeaderSize) || length > int.MaxValue - 2 * CacheLine)
        {
            throw new LogCorruptException(lsn, string.Create(CultureInfo.InvariantCulture,
                $"The frame at LSN {lsn} claims {length} bytes, past the durable tail {end}: the durable log is damaged."));
        }
        return (int)length;
    }

    internal void VerifyChecksum(long lsn, ReadOnlySpan<byte> payload)
    {
        uint stored = BinaryPrimitives.ReadUInt32LittleEndian(_mapping.GetReadOnlySpan(_ringOffset + lsn % _capacity + 4, 4));
        if (stored != Checksum(payload, lsn))
        {
            throw new LogCorruptException(lsn, string.Create(CultureInfo.InvariantCulture,
                $"The record at LSN {lsn} ({payload.Length} bytes) fails its checksum: the durable log is damaged."));
        }
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

    internal static uint Checksum(ReadOnlySpan<byte> payload, long lsn)
        => (uint)XxHash3.HashToUInt64(payload, ChecksumSeed(lsn, payload.Length));

    /// <summary>The XxHash3 seed of a frame's checksum: its LSN and payload length.</summary>
    internal static long ChecksumSeed(long lsn, long length) => lsn ^ (length << 40);

    internal static void WriteFrameHeader(Span<byte> frame, int length, uint checksum, long lsn)
    {
        BinaryPrimitives.WriteInt32LittleEndian(frame, length);
        BinaryPrimitives.WriteUInt32LittleEndian(frame[4..], checksum);
        BinaryPrimitives.WriteInt64LittleEndian(frame[8..], lsn);
    }

    /// <summary>Throws the pool's <see cref="ObjectDisposedException"/> if it was disposed: what any operation racing its Dispose reports.</summary>
    private void ThrowIfPoolDisposed() => _pool.ThrowIfDisposed();

    private void Fail(Exception e)
    {
        Interlocked.CompareExchange(ref _failure, e, null);
        WakeSleepers();
    }

    private void ThrowIfFailed()
    {
        if (Volatile.Read(ref _failure) is Exception failure)
        {
            // An append that failed because the pool was disposed under it is not a damaged log.
            ThrowIfPoolDisposed();
            throw new PmemException("An earlier append failed while writing, so later records cannot become durable in order; reopen the log to recover.", failure);
        }
    }
}
