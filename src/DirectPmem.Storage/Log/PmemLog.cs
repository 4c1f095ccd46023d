using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
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
/// payload, padded to 16 bytes. A frame may wrap around the end of the ring.</para>
/// <para><b>Append protocol</b> (who does what, and what a crash at each step leaves):</para>
/// <list type="number">
/// <item>Reserve: a compare-and-swap advances the volatile reservation cursor by the frame size,
/// if the ring has room between the durable head and the new end (else <see cref="LogFullException"/>,
/// nothing reserved). No lock. A crash leaves nothing: the tail was not moved.</item>
/// <item>Copy: the appender writes its frame with the non-temporal engine, flushing without a
/// drain, then drains (SFENCE) its own stores. Appenders copy in parallel. A crash leaves bytes
/// after the durable tail, which recovery ignores and later appends overwrite.</item>
/// <item>Complete: the appender waits until the completion cursor reaches its start (every
/// earlier record is durable) and moves it to its end. Completion is in LSN order, so the cursor
/// always marks a durable prefix.</item>
/// <item>Publish (group commit): while its end is not yet published, an appender tries to become
/// the publisher (one flag); the publisher reads the completion cursor and publishes it as the
/// tail with one failure-atomic 8-byte store + flush + drain, covering every record completed so
/// far; the others wait for it. A crash before the publish leaves the old tail (the records are
/// not acknowledged and are ignored); after it, the new tail, whose records were all durable first.</item>
/// <item>Return: the append returns its LSN once the published tail covers its end.</item>
/// </list>
/// <para><b>Truncate</b> publishes a new head (one 8-byte publish) before the space is reused, so
/// a crash never leaves a head pointing at overwritten frames. <b>Recovery</b> on open reads the
/// head and tail words; everything after the tail is ignored and overwritten. Reads check every
/// frame (LSN, length within the tail, checksum) and never return a damaged one.</para>
/// <para>The log is circular: appends fail with <see cref="LogFullException"/> when the records
/// between head and tail plus the new ones would exceed <see cref="Capacity"/>; truncate to make room.</para>
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
    internal const uint CurrentVersion = 1;
    private const int StackFrameLimit = 2048;

    internal static ReadOnlySpan<byte> Magic => "DPMLOG01"u8;

    private readonly PmemPool _pool;
    private readonly DaxMapping _mapping;
    private readonly long _ringOffset;
    private readonly long _capacity;
    private readonly Lock _truncateGate = new();
    private Cursors _cursors;
    private int _publishing;
    private Exception? _failure;

    [StructLayout(LayoutKind.Explicit, Size = 320)]
    private struct Cursors
    {
        // One cache line each: appenders hammer Reserved, Completed and Published from different cores.
        [FieldOffset(64)] public long Reserved;
        [FieldOffset(128)] public long Completed;
        [FieldOffset(192)] public long Published;
        [FieldOffset(256)] public long Head;
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
    public long Tail => Volatile.Read(ref _cursors.Published);

    /// <summary>The bytes free for appends now (frames included).</summary>
    public long FreeBytes => _capacity - (Volatile.Read(ref _cursors.Reserved) - Head);

    /// <summary>The largest payload one record can have: the capacity minus one frame header.</summary>
    public int MaxRecordLength => (int)Math.Min(int.MaxValue - 2 * FrameAlignment, _capacity - FrameHeaderSize);

    /// <summary>The bytes a record of <paramref name="payloadLength"/> takes in the ring: header, payload, padding.</summary>
    /// <param name="payloadLength">The payload length.</param>
    /// <returns>The frame length, a multiple of <see cref="FrameAlignment"/>.</returns>
    public static int FrameLength(int payloadLength)
        => (FrameHeaderSize + payloadLength + FrameAlignment - 1) & ~(FrameAlignment - 1);

    /// <summary>The length a log with a ring of <paramref name="capacity"/> bytes takes in a pool.</summary>
    /// <param name="capacity">The ring capacity, a positive multiple of 4096.</param>
    /// <returns>The log length.</returns>
    public static long LengthFor(long capacity) => checked(HeaderLength + capacity);

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
    public static PmemLog Open(PmemPool pool, long offset)
    {
        ArgumentNullException.ThrowIfNull(pool);
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
            throw;
        }
        Commit(lsn, lsn + total);
        Diagnostics.StorageCounts.OnAppend(batch.Count, total);
        return lsn;
    }

    /// <summary>Reads the records from the head to the durable tail (as of this call), without allocating per record.</summary>
    /// <returns>A struct enumerator for <c>foreach</c>.</returns>
    public LogReader ReadAll() => new(this, Head, Tail, firstIsBoundary: true);

    /// <summary>Reads the records from <paramref name="lsn"/> to the durable tail (as of this call).</summary>
    /// <param name="lsn">The LSN of a record (from <see cref="Append(ReadOnlySpan{byte})"/> or <see cref="LogRecord.NextLsn"/>), or the tail.</param>
    /// <returns>A struct enumerator for <c>foreach</c>.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The LSN was truncated or is past the tail.</exception>
    /// <exception cref="ArgumentException">The LSN is not a multiple of 16.</exception>
    public LogReader ReadFrom(long lsn)
    {
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
        return ReadFrameHeader(lsn, tail, lsn == Head);
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
                ReadFrameHeader(lsn, tail, boundaryKnown: false);
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
                throw new LogFullException(frameBytes, _capacity - (start - head), _capacity);
            }
            if (Interlocked.CompareExchange(ref _cursors.Reserved, end, start) == start)
            {
                return start;
            }
        }
    }

    /// <summary>Step 2: copy the frame (flushed, not drained).</summary>
    [SkipLocalsInit]
    internal void WriteFrame(long lsn, ReadOnlySpan<byte> payload)
    {
        int frameLength = FrameLength(payload.Length);
        uint checksum = Checksum(payload, lsn);
        if (frameLength <= StackFrameLimit)
        {
            Span<byte> frame = stackalloc byte[frameLength];
            WriteFrameHeader(frame, payload.Length, checksum, lsn);
            payload.CopyTo(frame[FrameHeaderSize..]);
            frame[(FrameHeaderSize + payload.Length)..].Clear();
            WriteRing(lsn, frame);
        }
        else
        {
            Span<byte> header = stackalloc byte[FrameHeaderSize];
            WriteFrameHeader(header, payload.Length, checksum, lsn);
            WriteRing(lsn, header);
            WriteRing(lsn + FrameHeaderSize, payload);
        }
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
        Volatile.Write(ref _cursors.Completed, end);
        return true;
    }

    /// <summary>Step 4 without waiting: if no one else is publishing, publish the completion cursor as the tail. Returns the published tail.</summary>
    internal long TryPublish()
    {
        if (Interlocked.CompareExchange(ref _publishing, 1, 0) == 0)
        {
            try
            {
                long completed = Volatile.Read(ref _cursors.Completed);
                if (completed > Volatile.Read(ref _cursors.Published))
                {
                    Diagnostics.StorageCounts.OnPublish(_mapping, _ringOffset, _capacity, Volatile.Read(ref _cursors.Published), completed);
                    _mapping.Publish(Offset + TailWordOffset, (ulong)completed);
                    Volatile.Write(ref _cursors.Published, completed);
                }
            }
            catch (Exception e)
            {
                Fail(e);
                throw;
            }
            finally
            {
                Volatile.Write(ref _publishing, 0);
            }
        }
        return Volatile.Read(ref _cursors.Published);
    }

    private void Commit(long start, long end)
    {
        if (!TryComplete(start, end))
        {
            SpinWait spin = default;
            do
            {
                ThrowIfFailed();
                spin.SpinOnce(sleep1Threshold: -1);
            }
            while (!TryComplete(start, end));
        }
        // Someone may already have published past this record (group commit): then no flag, no publish.
        if (Volatile.Read(ref _cursors.Published) >= end || TryPublish() >= end)
        {
            return;
        }
        SpinWait wait = default;
        while (Volatile.Read(ref _cursors.Published) < end && TryPublish() < end)
        {
            ThrowIfFailed();
            wait.SpinOnce(sleep1Threshold: -1);
        }
    }

    private void WriteRing(long lsn, ReadOnlySpan<byte> data)
    {
        long physical = lsn % _capacity;
        int first = (int)Math.Min(data.Length, _capacity - physical);
        _mapping.Write(data[..first], _ringOffset + physical, PmemCopyOptions.NoDrain);
        if (first < data.Length)
        {
            _mapping.Write(data[first..], _ringOffset, PmemCopyOptions.NoDrain);
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
        if (length > (ulong)(end - lsn - FrameHeaderSize))
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
        => (uint)XxHash3.HashToUInt64(payload, lsn ^ ((long)payload.Length << 40));

    internal static void WriteFrameHeader(Span<byte> frame, int length, uint checksum, long lsn)
    {
        BinaryPrimitives.WriteInt32LittleEndian(frame, length);
        BinaryPrimitives.WriteUInt32LittleEndian(frame[4..], checksum);
        BinaryPrimitives.WriteInt64LittleEndian(frame[8..], lsn);
    }

    private void Fail(Exception e) => Interlocked.CompareExchange(ref _failure, e, null);

    private void ThrowIfFailed()
    {
        if (Volatile.Read(ref _failure) is Exception failure)
        {
            throw new PmemException("An earlier append failed while writing, so later records cannot become durable in order; reopen the log to recover.", failure);
        }
    }
}
