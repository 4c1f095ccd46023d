using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using DirectPmem.Mapping;

namespace DirectPmem.Storage;

/// <summary>The static fields of a log header: what Create writes once and Open checks.</summary>
/// <param name="Capacity">The ring capacity in bytes.</param>
/// <param name="Nonce">A random per-log value that seeds every frame checksum, so that the frames of another log (or a payload that copies one) never validate here.</param>
/// <param name="Window">How far past the tail word appenders may start frames: recovery scans and clears at most this much past it.</param>
internal readonly record struct LogLayout(long Capacity, long Nonce, long Window);

/// <summary>
/// The on-media format of a log, in one place: header fields, frame layout and checksum, and the
/// one routine that judges a header (<see cref="ValidateHeader"/>) and a frame
/// (<see cref="CheckFrame"/>). <see cref="PmemLog"/>, its reader, its recovery scan, the storage
/// counters and the inspection <c>dpmem check</c> uses all parse through it.
/// </summary>
/// <remarks>
/// <para><b>Header</b> (4 KiB at the log's offset), format 5: a <see cref="FormatHeader"/> block of 128
/// bytes (signature "DPMLOG01", major 5, minor 0, header size 128, compat, incompat and ro-compat
/// feature words, none defined yet; ring capacity i64 @40, checksum nonce i64 @48, unpersisted-tail
/// window i64 @56, zero up to 120, XxHash3-64 of [0, 120) @120), written once at creation; the tail
/// word (@128, its own cache line) and the head word (@192, its own line); the rest of the page zero.
/// The format keeps no backup copy of the block: the tail and head words share its page and have no
/// copy either (they change on every truncation), so a lost header page loses the log whatever a
/// second copy of the block would hold; the block is written once, with the ring empty.</para>
/// <para>Formats 1 to 3 (earlier previews: magic "DPMLOG01", a u32 version @8, the XxHash3 of [0, 40)
/// @40, the tail word @64 and the head word @128) are recognised and refused with a
/// <see cref="LogHeaderField.Version"/> error: this preview does not convert them.</para>
/// <para><b>Frame</b>: payload length u32, checksum u32, LSN i64, payload, padding to a multiple of 64
/// bytes (a cache line), so every frame starts and ends on a line: two appenders never write the
/// same line, and no frame rewrites a line the previous one flushed. Format 4 had the same header
/// and frames padded to 16 bytes (to 64 above 256 bytes); its logs are refused as an older major
/// version, since its short frames would be misread. The checksum is the low half of XxHash3 of
/// the payload seeded with the log's nonce, the LSN and the length.</para>
/// </remarks>
internal static class LogFormat
{
    internal const int HeaderLength = 4096;
    internal const int FrameHeaderSize = 16;
    internal const int CacheLine = 64;

    // Every frame starts on a cache line (format 5): recovery, FindRecord and the probes after a media
    // error look only there, and a frame anywhere else (a 16-byte position inside another record's
    // padding, say) is not a record even when its LSN and checksum match.
    internal const int FrameAlignment = CacheLine;
    internal const int StagedFrameLimit = 256;
    internal const int BlockLength = 128;
    internal const int CapacityOffset = FormatHeader.PrefixLength;
    internal const int NonceOffset = 48;
    internal const int WindowOffset = 56;
    internal const int ChecksumOffset = BlockLength - 8;
    internal const int TailWordOffset = 128;
    internal const int HeadWordOffset = 192;
    internal const ushort Major = 5;
    internal const ushort Minor = 0;
    internal const ulong Signature = 0x3130474F4C4D5044; // "DPMLOG01" little-endian

    // Formats 1 to 3 (earlier previews): a u32 version at 8 and the XxHash3 of [0, 40) at 40.
    private const int OldStaticLength = 40;
    private const int OldChecksumOffset = 40;

    /// <summary>The log header's format: signature, version and the feature bits this library knows (none yet).</summary>
    internal static readonly FormatRules Rules = new("log header", Signature, BlockLength, Major, Minor, KnownCompat: 0, KnownIncompat: 0, KnownRoCompat: 0);

    /// <summary>The largest unpersisted-tail window. Recovery reads and clears at most this many bytes past the tail word.</summary>
    internal const long MaxWindow = 1L << 20;

    /// <summary>The frame length of a payload: see <see cref="PmemLog.FrameLength"/>.</summary>
    internal static int FrameLength(int payloadLength) => (FrameHeaderSize + payloadLength + CacheLine - 1) & ~(CacheLine - 1);

    /// <summary>The window a log of <paramref name="capacity"/> gets: half the ring, at most <see cref="MaxWindow"/>.</summary>
    internal static long WindowFor(long capacity) => Math.Min(capacity / 2, MaxWindow);

    /// <summary>The XxHash3 seed of a frame's checksum: the log's nonce, the frame's LSN and its payload length.</summary>
    internal static long ChecksumSeed(long nonce, long lsn, long length) => nonce ^ lsn ^ (length << 40);

    internal static uint Checksum(long nonce, ReadOnlySpan<byte> payload, long lsn)
        => (uint)XxHash3.HashToUInt64(payload, ChecksumSeed(nonce, lsn, payload.Length));

    internal static void WriteFrameHeader(Span<byte> frame, int length, uint checksum, long lsn)
    {
        BinaryPrimitives.WriteInt32LittleEndian(frame, length);
        BinaryPrimitives.WriteUInt32LittleEndian(frame[4..], checksum);
        BinaryPrimitives.WriteInt64LittleEndian(frame[8..], lsn);
    }

    /// <summary>Builds the header block (bytes 0-127, sealed) into <paramref name="header"/>; the tail and head words after it are left as they are.</summary>
    internal static void WriteHeader(Span<byte> header, in LogLayout layout)
    {
        header[..BlockLength].Clear();
        FormatHeader.WritePrefix(header, Rules, compat: 0, incompat: 0, roCompat: 0);
        BinaryPrimitives.WriteInt64LittleEndian(header[CapacityOffset..], layout.Capacity);
        BinaryPrimitives.WriteInt64LittleEndian(header[NonceOffset..], layout.Nonce);
        BinaryPrimitives.WriteInt64LittleEndian(header[WindowOffset..], layout.Window);
        FormatHeader.Seal(header[..BlockLength]);
    }

    /// <summary>
    /// Whether the first <see cref="BlockLength"/> bytes at <paramref name="block"/> hold an intact log header block
    /// of this format or of an earlier preview's (what Create refuses to overwrite).
    /// </summary>
    internal static bool LooksLive(ReadOnlySpan<byte> block) => FormatHeader.IsIntact(block[..BlockLength], Rules) || IsOldFormat(block, out _);

    // An intact header of formats 1 to 3: the signature, a version of 1 to 3 and the old checksum matching.
    private static bool IsOldFormat(ReadOnlySpan<byte> block, out uint version)
    {
        version = BinaryPrimitives.ReadUInt32LittleEndian(block[FormatHeader.MajorOffset..]);
        return FormatHeader.HasSignature(block, Rules) && version is >= 1 and <= 3
            && BinaryPrimitives.ReadUInt64LittleEndian(block[OldChecksumOffset..]) == XxHash3.HashToUInt64(block[..OldStaticLength]);
    }

    /// <summary>The bytes of the header a judge reads: the block, the tail word's line and the head word's line.</summary>
    internal const int ReadLength = HeadWordOffset + CacheLine;

    /// <summary>
    /// Reads the header at <paramref name="offset"/> poison-safe (<see cref="MediaRead.Copy"/>) and judges it
    /// (<see cref="ValidateHeader"/>): what <see cref="PmemLog.Open(PmemPool, long)"/> and <see cref="PmemLog.Inspect"/>
    /// both run. A header on unreadable media is a <see cref="LogHeaderField.MediaError"/> error.
    /// </summary>
    internal static bool Examine(DaxMapping mapping, long offset, long dataOffset, long poolSize, ILogProblemSink sink,
        out LogLayout layout, out long durableTail, out long head, out Version? version)
    {
        Span<byte> header = stackalloc byte[ReadLength];
        version = null;
        if (offset % HeaderLength == 0 && offset >= dataOffset && offset <= poolSize - 2 * HeaderLength)
        {
            try
            {
                MediaRead.Copy(mapping, offset, header);
            }
            catch (PmemMediaErrorException e)
            {
                (layout, durableTail, head) = (default, 0, 0);
                sink.Report(LogHeaderField.MediaError, PoolProblemSeverity.Error, Invariant(
                    $"the log header at {offset} cannot be read: it met {e.Cause} at [0x{e.BadOffset:x}, +0x{e.BadLength:x})"));
                return false;
            }
            if (FormatHeader.IsIntact(header[..BlockLength], Rules))
            {
                version = new Version(FormatHeader.Major(header), FormatHeader.Minor(header));
            }
        }
        return ValidateHeader(header, offset, dataOffset, poolSize, sink, out layout, out durableTail, out head);
    }

    /// <summary>
    /// The one judge of a log header, shared by <see cref="PmemLog.Open(PmemPool, long)"/> (whose sink throws the
    /// first error and keeps the first read-only reason) and an inspection (whose sink collects them). Checks, in
    /// order: location, signature, an earlier preview's format, checksum, version, header size and feature words
    /// (<see cref="FormatHeader.Validate"/>), capacity, window, tail word, head word. Returns the layout and the two
    /// words when the header can be used (no error up to the words).
    /// </summary>
    internal static bool ValidateHeader(ReadOnlySpan<byte> header, long offset, long dataOffset, long poolSize, ILogProblemSink sink,
        out LogLayout layout, out long durableTail, out long head)
    {
        layout = default;
        durableTail = 0;
        head = 0;
        if (offset % HeaderLength != 0 || offset < dataOffset || offset > poolSize - 2 * HeaderLength)
        {
            sink.Report(LogHeaderField.Location, PoolProblemSeverity.Error, Invariant(
                $"a log cannot start at {offset}: it must be a multiple of {HeaderLength} in the data area [{dataOffset}, {poolSize - 2 * HeaderLength}]"));
            return false;
        }
        ReadOnlySpan<byte> block = header[..BlockLength];
        if (!FormatHeader.HasSignature(block, Rules))
        {
            sink.Report(LogHeaderField.Magic, PoolProblemSeverity.Error, Invariant(
                $"no log at offset {offset}: {FormatHeader.Describe(block, Rules)}"));
            return false;
        }
        if (IsOldFormat(header, out uint old))
        {
            sink.Report(LogHeaderField.Version, PoolProblemSeverity.Error, Invariant(
                $"the log at {offset} has format version {old}, written by an earlier preview ({(old < 3 ? "a durable tail published on every append" : "a header without feature words, the tail word at 64")}): this preview library reads log format {Major} only and does not convert older logs; read its records with the preview that wrote it and append them to a new log"));
            return false;
        }
        if (!FormatHeader.ChecksumMatches(block))
        {
            sink.Report(LogHeaderField.Checksum, PoolProblemSeverity.Error, Invariant(
                $"the log header at {offset}: {FormatHeader.Describe(block, Rules)}"));
            return false;
        }
        var counting = new ErrorCounter(sink);
        FormatHeader.Validate(block, Rules, counting, LogHeaderField.Version, LogHeaderField.Version, LogHeaderField.Features, LogHeaderField.Features, LogHeaderField.Features);
        if (counting.Errors > 0)
        {
            return false;
        }
        long capacity = BinaryPrimitives.ReadInt64LittleEndian(header[CapacityOffset..]);
        if (capacity < HeaderLength || capacity % HeaderLength != 0 || capacity > poolSize - offset - HeaderLength)
        {
            sink.Report(LogHeaderField.Capacity, PoolProblemSeverity.Error, Invariant(
                $"the log's capacity {capacity} is not a positive multiple of {HeaderLength} that fits in the pool after {offset}"));
            return false;
        }
        long window = BinaryPrimitives.ReadInt64LittleEndian(header[WindowOffset..]);
        if (window < FrameAlignment || window % FrameAlignment != 0 || window > capacity || window > MaxWindow)
        {
            sink.Report(LogHeaderField.Window, PoolProblemSeverity.Error, Invariant(
                $"the log's tail window {window} is not a multiple of {FrameAlignment} in [{FrameAlignment}, min(capacity {capacity}, {MaxWindow})]"));
            return false;
        }
        layout = new LogLayout(capacity, BinaryPrimitives.ReadInt64LittleEndian(header[NonceOffset..]), window);
        durableTail = BinaryPrimitives.ReadInt64LittleEndian(header[TailWordOffset..]);
        head = BinaryPrimitives.ReadInt64LittleEndian(header[HeadWordOffset..]);
        bool ok = true;
        if (durableTail < 0 || durableTail % FrameAlignment != 0)
        {
            sink.Report(LogHeaderField.Tail, PoolProblemSeverity.Error, Invariant($"the tail word {durableTail} is not a non-negative multiple of {FrameAlignment}"));
            ok = false;
        }
        if (head < 0 || head % FrameAlignment != 0 || head > durableTail || durableTail - head > capacity)
        {
            sink.Report(LogHeaderField.Head, PoolProblemSeverity.Error, Invariant(
                $"the head word {head} must be a multiple of {FrameAlignment} in [tail - capacity, tail] = [{durableTail - capacity}, {durableTail}]"));
            ok = false;
        }
        return ok;
    }

    /// <summary>
    /// The one frame check: the frame at <paramref name="lsn"/> carries that LSN, its length fits
    /// before <paramref name="end"/>, and its payload matches its checksum. Reads the media through
    /// <see cref="DaxMapping.ReadSafe"/> into <paramref name="scratch"/> (grown as needed), so a
    /// poisoned line is a <see cref="PmemMediaErrorException"/>, never a SIGBUS. Returns the payload
    /// length, or -1 with <paramref name="problem"/> saying what failed.
    /// </summary>
    internal static int CheckFrame(DaxMapping mapping, long ringOffset, in LogLayout layout, long lsn, long end, ref byte[] scratch, out string? problem)
    {
        long capacity = layout.Capacity;
        if (lsn % FrameAlignment != 0)
        {
            problem = Invariant($"{lsn} is not on a {FrameAlignment}-byte line, where every frame starts");
            return -1;
        }
        if (end - lsn < FrameHeaderSize)
        {
            problem = Invariant($"its {FrameHeaderSize}-byte header would run past {end}");
            return -1;
        }
        // Frames start on a cache line and the capacity is a multiple of 4096: a header never wraps.
        Span<byte> header = stackalloc byte[FrameHeaderSize];
        MediaRead.Copy(mapping, ringOffset + lsn % capacity, header);
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(header);
        uint storedChecksum = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
        long storedLsn = BinaryPrimitives.ReadInt64LittleEndian(header[8..]);
        if (storedLsn != lsn)
        {
            problem = Invariant($"it carries LSN {storedLsn}");
            return -1;
        }
        if (length > (ulong)(end - lsn - FrameHeaderSize) || length > int.MaxValue - 2 * CacheLine)
        {
            problem = Invariant($"it claims {length} bytes, past {end}");
            return -1;
        }
        int n = (int)length;
        if (scratch.Length < n)
        {
            scratch = new byte[Math.Max(n, scratch.Length * 2)];
        }
        Span<byte> payload = scratch.AsSpan(0, n);
        long physical = (lsn + FrameHeaderSize) % capacity;
        int first = (int)Math.Min(n, capacity - physical);
        MediaRead.Copy(mapping, ringOffset + physical, payload[..first]);
        if (first < n)
        {
            MediaRead.Copy(mapping, ringOffset, payload[first..]);
        }
        uint computed = Checksum(layout.Nonce, payload, lsn);
        if (computed != storedChecksum)
        {
            problem = Invariant($"the {n}-byte payload fails its checksum (stored 0x{storedChecksum:x8}, computed 0x{computed:x8})");
            return -1;
        }
        problem = null;
        return n;
    }

    /// <summary>
    /// After <paramref name="error"/> ended the check of the frame at <paramref name="lsn"/>: the LSN
    /// of the next frame that validates (checked against <paramref name="end"/>), probing the line
    /// positions (every 64 bytes) from the end of the bad unit on, up to <paramref name="probeEnd"/>. A probe that
    /// meets unreadable media again skips that unit too. Frames carry their LSN and a checksum seeded
    /// with the log's nonce, so a frame found this way is this log's record at its own place (what
    /// <see cref="PmemLog.FindRecord"/> relies on). Returns whether one was found, and where the
    /// search ended in <paramref name="next"/>.
    /// </summary>
    internal static bool FindIntactAfter(DaxMapping mapping, long ringOffset, in LogLayout layout, long lsn, long probeEnd, long end,
        PmemMediaErrorException error, ref byte[] scratch, out long next)
    {
        long at = ResumeLsn(ringOffset, layout.Capacity, lsn, error);
        while (at < probeEnd)
        {
            try
            {
                if (CheckFrame(mapping, ringOffset, layout, at, end, ref scratch, out _) >= 0)
                {
                    next = at;
                    return true;
                }
                at += FrameAlignment;
            }
            catch (PmemMediaErrorException again)
            {
                at = ResumeLsn(ringOffset, layout.Capacity, at, again);
            }
        }
        next = probeEnd;
        return false;
    }

    // The first frame position after the unit holding the bad byte, as an LSN (never before lsn + 64).
    // Poison is reported per unit (a page for memory-failure handling), a truncated file ends on a
    // page: nothing in the rest of that unit or page reads.
    private static long ResumeLsn(long ringOffset, long capacity, long lsn, PmemMediaErrorException error)
    {
        long page = Environment.SystemPageSize;
        long badEnd = error.Kind == MediaErrorKind.Poison && error.BadLength > 0
            ? error.BadOffset + error.BadLength
            : (error.BadOffset + page) & ~(page - 1);
        long physical = Math.Clamp(badEnd - ringOffset, 0, capacity);
        long start = lsn % capacity;
        // A read may wrap: a bad byte physically before the frame's start lies in the next lap.
        long resume = lsn - start + physical + (physical <= start ? capacity : 0);
        resume = (resume + FrameAlignment - 1) & ~(long)(FrameAlignment - 1);
        return Math.Max(resume, lsn + FrameAlignment);
    }

    /// <summary>
    /// The number of frames in [from, to), for the storage counters: a walk over their length
    /// words only (the range is drained and acknowledged). It never throws: a counter must not
    /// fail an append, so a frame that does not make sense ends the walk.
    /// </summary>
    internal static long CountFrames(DaxMapping mapping, long ringOffset, long capacity, long from, long to)
    {
        long records = 0;
        for (long lsn = from; lsn < to && to - lsn >= FrameHeaderSize && capacity > 0;)
        {
            // Frames start on a cache line and the capacity is a multiple of 4096: a header never wraps.
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(mapping.GetReadOnlySpan(ringOffset + lsn % capacity, 4));
            if (length > (ulong)(to - lsn - FrameHeaderSize))
            {
                break;
            }
            records++;
            lsn += FrameLength((int)length);
        }
        return records;
    }

    internal static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>Where the log's judge reports a problem (one sentence without a final stop): Open's sink throws, an inspection's collects.</summary>
internal interface ILogProblemSink
{
    void Report(LogHeaderField field, PoolProblemSeverity severity, string message);
}

/// <summary>
/// The sink of <see cref="PmemLog.Open(PmemPool, long)"/>: the first error is a <see cref="LogFormatException"/>
/// (the sentence capitalised, with a final stop); the first read-only reason is kept (the log then opens read-only).
/// </summary>
internal sealed class ThrowingLogProblemSink : ILogProblemSink
{
    /// <summary>Why the log must be opened read-only, or null.</summary>
    public string? ReadOnlyReason { get; private set; }

    public void Report(LogHeaderField field, PoolProblemSeverity severity, string message)
    {
        if (severity == PoolProblemSeverity.Error)
        {
            throw new LogFormatException(field, Sentence(message));
        }
        if (severity == PoolProblemSeverity.ReadOnly)
        {
            ReadOnlyReason ??= message;
        }
    }

    /// <summary>The exception's sentence for a problem's message: capitalised, with a final stop.</summary>
    public static string Sentence(string message) => char.ToUpperInvariant(message[0]) + message[1..] + ".";
}

// FormatHeader.Validate reports through the generic sink; the log's sink and the caller's error count.
file sealed class ErrorCounter(ILogProblemSink inner) : IFormatProblemSink<LogHeaderField>
{
    public int Errors { get; private set; }

    public void Report(LogHeaderField field, PoolProblemSeverity severity, string message)
    {
        Errors += severity == PoolProblemSeverity.Error ? 1 : 0;
        inner.Report(field, severity, message);
    }
}
