using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using DirectPmem.Mapping;
using DirectPmem.Persistence;

namespace DirectPmem.Storage;

/// <summary>
/// The ring I/O of a <see cref="PmemLog"/>: writing a frame (staged, streamed or whole lines) at an
/// LSN, and reading frames back, wrapping at the end of the ring. It knows the format
/// (<see cref="LogFormat"/>) and the mapping; it knows nothing of cursors or waiting.
/// </summary>
internal sealed class LogRing
{
    private const int FrameHeaderSize = LogFormat.FrameHeaderSize;
    private const int StagedFrameLimit = LogFormat.StagedFrameLimit;
    private const int CacheLine = LogFormat.CacheLine;

    private readonly DaxMapping _mapping;
    private readonly long _ringOffset;
    private readonly long _capacity;
    private readonly long _nonce;

    internal LogRing(DaxMapping mapping, long ringOffset, long capacity, long nonce)
    {
        _mapping = mapping;
        _ringOffset = ringOffset;
        _capacity = capacity;
        _nonce = nonce;
    }

    internal long RingOffset => _ringOffset;

    internal long Capacity => _capacity;

    internal long Nonce => _nonce;

    internal DaxMapping Mapping => _mapping;

    internal static int FrameLength(int payloadLength) => LogFormat.FrameLength(payloadLength);

    /// <summary>Step 2: copy the frame (non-temporal stores, not drained).</summary>
    /// <remarks>
    /// Every frame starts on a cache line and is a whole number of lines long (<see cref="LogFormat.FrameLength"/>;
    /// LSN and ring position agree modulo the line size: the ring starts 4 KiB aligned and its capacity
    /// is a multiple of 4 KiB), so no line holds parts of two frames. A short frame is staged whole on
    /// the stack, with its zero padding, and written with one copy of non-temporal stores: whole lines
    /// need no read of the old line (a cached store reads it from memory first) and no flush; the
    /// caller's drain makes them durable. A longer one is written as whole lines with non-temporal
    /// stores too (<see cref="WriteAlignedLongFrame"/>). No line is left partly written: the next
    /// record, maybe another core's, never needs a line this one wrote.
    /// </remarks>
    [SkipLocalsInit]
    internal void WriteFrame(long lsn, ReadOnlySpan<byte> payload)
    {
        Debug.Assert((lsn & (CacheLine - 1)) == 0, "frames start on a cache line");
        int frameLength = FrameLength(payload.Length);
        if (frameLength <= StagedFrameLimit)
        {
            Span<byte> frame = stackalloc byte[StagedFrameLimit];
            frame = frame[..frameLength];
            WriteFrameHeader(frame, payload.Length, Checksum(payload, lsn), lsn);
            payload.CopyTo(frame[FrameHeaderSize..]);
            frame[(FrameHeaderSize + payload.Length)..].Clear();
            WriteRing(lsn, frame, PmemCopyOptions.NoDrain | PmemCopyOptions.NonTemporal);
        }
        else
        {
            WriteAlignedLongFrame(lsn, payload);
        }
    }

    /// <summary>
    /// A long frame that starts on a cache line (its length is a multiple of 64, so it ends on one
    /// too) is written as whole lines with non-temporal stores only, no flush of a partial line:
    /// the middle lines straight from the caller's memory, the last one staged on the stack with
    /// the payload's tail and zero padding, then (its checksum computed while those stores drain)
    /// the first line with the header and the payload's first 48 bytes. A frame that wraps splits
    /// at a line boundary.
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

    internal void WriteRing(long lsn, ReadOnlySpan<byte> data, PmemCopyOptions flags = PmemCopyOptions.NoDrain)
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
        // Through the poison-safe copy: a record copied out (PmemLog.Read) never costs the process.
        MediaRead.Copy(_mapping, _ringOffset + physical, destination[..first]);
        if (first < destination.Length)
        {
            MediaRead.Copy(_mapping, _ringOffset, destination[first..]);
        }
    }

    /// <summary>The payload as a span into the ring when it does not wrap, else copied into <paramref name="scratch"/> (<see cref="LogReadMode.ZeroCopy"/>).</summary>
    internal ReadOnlySpan<byte> GetPayload(long lsn, int length, scoped ref byte[]? scratch)
    {
        long physical = (lsn + FrameHeaderSize) % _capacity;
        if (physical + length <= _capacity)
        {
            return _mapping.GetReadOnlySpan(_ringOffset + physical, length);
        }
        return CopyPayload(lsn, length, ref scratch);
    }

    /// <summary>The payload copied through the poison-safe copy into <paramref name="scratch"/> (rented from the shared pool, grown as needed; <see cref="LogReadMode.Copy"/>).</summary>
    internal ReadOnlySpan<byte> CopyPayload(long lsn, int length, scoped ref byte[]? scratch)
    {
        if (scratch is null || scratch.Length < length)
        {
            if (scratch is not null)
            {
                ArrayPool<byte>.Shared.Return(scratch);
            }
            scratch = ArrayPool<byte>.Shared.Rent(Math.Max(length, 256));
        }
        Span<byte> copy = scratch.AsSpan(0, length);
        CopyFromRing(lsn + FrameHeaderSize, copy);
        return copy;
    }

    /// <summary>
    /// Checks the frame header at <paramref name="lsn"/> (LSN, length within <paramref name="end"/>), read
    /// once through the poison-safe copy, and returns the payload length and the stored checksum.
    /// </summary>
    internal int ReadFrameHeader(long lsn, long end, bool boundaryKnown, out uint storedChecksum)
    {
        if (end - lsn < FrameHeaderSize)
        {
            throw new LogCorruptException(lsn, string.Create(CultureInfo.InvariantCulture,
                $"The frame at LSN {lsn} would run past the durable tail {end}."));
        }
        Span<byte> header = stackalloc byte[FrameHeaderSize];
        MediaRead.Copy(_mapping, _ringOffset + lsn % _capacity, header);
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
        storedChecksum = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
        if (length > (ulong)(end - lsn - FrameHeaderSize) || length > int.MaxValue - 2 * CacheLine)
        {
            throw new LogCorruptException(lsn, string.Create(CultureInfo.InvariantCulture,
                $"The frame at LSN {lsn} claims {length} bytes, past the durable tail {end}: the durable log is damaged."));
        }
        return (int)length;
    }

    /// <summary>Checks <paramref name="payload"/> against the checksum <see cref="ReadFrameHeader"/> read from its frame.</summary>
    internal void VerifyChecksum(long lsn, ReadOnlySpan<byte> payload, uint stored)
    {
        if (stored != Checksum(payload, lsn))
        {
            throw new LogCorruptException(lsn, string.Create(CultureInfo.InvariantCulture,
                $"The record at LSN {lsn} ({payload.Length} bytes) fails its checksum: the durable log is damaged."));
        }
    }

    internal uint Checksum(ReadOnlySpan<byte> payload, long lsn) => LogFormat.Checksum(_nonce, payload, lsn);

    private static void WriteFrameHeader(Span<byte> frame, int length, uint checksum, long lsn) => LogFormat.WriteFrameHeader(frame, length, checksum, lsn);


    /// <summary>Whether a frame that validates (its LSN, its length before <paramref name="end"/>, its checksum) starts at <paramref name="lsn"/>.</summary>
    internal bool IsFrameAt(long lsn, long end)
    {
        byte[] scratch = ArrayPool<byte>.Shared.Rent(256);
        try
        {
            return LogFormat.CheckFrame(_mapping, _ringOffset, new LogLayout(_capacity, _nonce, 0), lsn, end, ref scratch, out _) >= 0;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }
}
