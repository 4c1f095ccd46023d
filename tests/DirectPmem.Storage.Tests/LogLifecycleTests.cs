using System.Buffers.Binary;
using DirectPmem.Mapping;
using Xunit;

namespace DirectPmem.Storage.Tests;

/// <summary>
/// The log's life cycle around its records: Create never overwrites a live log unless told to,
/// Dispose persists the tail word and ends the instance, FindRecord seeks by position, and the one
/// judge (Open's throwing sink, Inspect's collecting one) reports every header problem alike.
/// </summary>
public sealed class LogLifecycleTests
{
    [Fact]
    public void CreateRefusesALiveLogNamingWhatIsThereUnlessToldToOverwrite()
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = LogTests.NewLog(mapping, 16 * 1024);
        log.Append(LogTests.Payload(0, 50));
        log.Append(LogTests.Payload(1, 50));
        LogExistsException e = Assert.Throws<LogExistsException>(() => PmemLog.Create(pool, log.Offset, 16 * 1024));
        Assert.Equal(log.Offset, e.Offset);
        Assert.Equal(2, e.Records);
        Assert.Contains($"offset {log.Offset}", e.Message, StringComparison.Ordinal);
        Assert.Contains("overwrite", e.Message, StringComparison.Ordinal);
        Assert.Equal(2, LogTests.ReadAll(PmemLog.Open(pool, log.Offset)).Count); // nothing was touched

        PmemLog fresh = PmemLog.Create(pool, log.Offset, 16 * 1024, overwrite: true);
        Assert.Empty(LogTests.ReadAll(fresh));
        Assert.Empty(LogTests.ReadAll(PmemLog.Open(pool, log.Offset)));
        pool.Dispose();
    }

    [Fact]
    public void DisposePersistsTheTailWordAndLaterCallsThrowNamingTheLog()
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = LogTests.NewLog(mapping, 16 * 1024);
        long end = log.Append(LogTests.Payload(0, 30)) + PmemLog.FrameLength(30);
        Assert.Equal(0, PmemLog.Inspect(mapping, log.Offset, pool.DataOffset).TailWord); // lazily persisted: not yet
        log.Dispose();
        log.Dispose(); // twice is fine
        LogInspection after = PmemLog.Inspect(mapping, log.Offset, pool.DataOffset);
        Assert.Equal(end, after.TailWord);
        Assert.Equal(end, after.Tail);
        ObjectDisposedException e = Assert.Throws<ObjectDisposedException>(() => log.Append(new byte[3]));
        Assert.Contains("PmemLog.Open", e.Message, StringComparison.Ordinal);
        Assert.Throws<ObjectDisposedException>(() => log.ReadAll());
        Assert.Throws<ObjectDisposedException>(() => log.Truncate(end));
        Assert.Throws<ObjectDisposedException>(() => log.FindRecord(0));
        pool.Dispose();
    }

    [Fact]
    public void FindRecordReturnsTheFirstRecordAtOrAfterEveryPosition()
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = LogTests.NewLog(mapping, 8192); // a 4 KiB ring: records wrap
        var lsns = new List<long>();
        for (int seq = 0; seq < 40; seq++)
        {
            int length = 10 + seq * 53 % 300;
            while (log.FreeBytes < PmemLog.FrameLength(length))
            {
                lsns.RemoveAt(0);
                log.Truncate(lsns[0]);
            }
            lsns.Add(log.Append(LogTests.Payload(seq, length)));
        }
        long head = log.Head;
        long tail = log.Tail;
        Assert.Equal(head, lsns[0]);
        for (long position = head - 40; position <= tail; position++)
        {
            long expected = position <= head ? head : lsns.FirstOrDefault(l => l >= position, tail);
            Assert.Equal(expected, log.FindRecord(position));
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => log.FindRecord(tail + 1));
        // What it finds is a truncation point.
        log.Truncate(log.FindRecord(lsns[3] - 5));
        Assert.Equal(lsns[3], log.Head);
        pool.Dispose();
    }

    [Fact]
    public void AFrameAtASixteenByteButNotLinePositionIsNeverARecord()
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = LogTests.NewLog(mapping, 16 * 1024);
        long first = log.Append(LogTests.Payload(0, 64)); // a 128-byte frame: 80 bytes, then 48 of padding
        // A well-formed frame of this log (its LSN, its length, its checksum seeded with the log's
        // nonce) in that padding, at first + 80: a multiple of 16, not of 64. Format 4 could have
        // put a frame there; format 5 never does.
        long forged = first + 80;
        Assert.Equal(16, forged % LogFormat.CacheLine);
        long nonce = BinaryPrimitives.ReadInt64LittleEndian(mapping.GetReadOnlySpan(log.Offset + LogFormat.NonceOffset, 8));
        byte[] payload = LogTests.Payload(99, 16);
        Span<byte> frame = stackalloc byte[LogFormat.FrameHeaderSize + payload.Length];
        LogFormat.WriteFrameHeader(frame, payload.Length, LogFormat.Checksum(nonce, payload, forged), forged);
        payload.CopyTo(frame[LogFormat.FrameHeaderSize..]);
        long ringOffset = log.Offset + LogFormat.HeaderLength;
        frame.CopyTo(mapping.GetSpan(ringOffset + forged % log.Capacity, frame.Length));
        long second = log.Append(LogTests.Payload(1, 64));
        Assert.Equal(first + PmemLog.FrameLength(64), second);

        // The one frame check refuses the position before it reads anything there.
        byte[] scratch = new byte[64];
        var layout = new LogLayout(log.Capacity, nonce, 0);
        Assert.Equal(-1, LogFormat.CheckFrame(mapping, ringOffset, layout, forged, log.Tail, ref scratch, out string? problem));
        Assert.Contains($"{forged} is not on a 64-byte line", problem, StringComparison.Ordinal);
        // FindRecord steps by lines, so from anywhere inside the first record it finds the second.
        for (long position = first + 1; position <= second; position++)
        {
            Assert.Equal(second, log.FindRecord(position));
        }
        // Reads and truncation name the position as one where no record starts.
        ArgumentException read = Assert.Throws<ArgumentException>(() => log.GetRecordLength(forged));
        Assert.Contains($"The LSN {forged} is not a multiple of 64", read.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => log.ReadFrom(forged));
        Assert.Throws<ArgumentException>(() => log.Truncate(forged));
        // Recovery walks frame to frame and finds both records, the forged one not among them.
        log.Dispose();
        PmemLog reopened = PmemLog.Open(pool, log.Offset);
        Assert.Equal([first, second], LogTests.ReadAll(reopened).Select(r => r.Lsn));
        pool.Dispose();
    }

    public static TheoryData<string, LogHeaderField> HeaderDamage => new()
    {
        { "magic", LogHeaderField.Magic },
        { "version", LogHeaderField.Version },
        { "older", LogHeaderField.Version },
        { "format4", LogHeaderField.Version },
        { "headersize", LogHeaderField.Version },
        { "incompat", LogHeaderField.Features },
        { "checksum", LogHeaderField.Checksum },
        { "capacity", LogHeaderField.Capacity },
        { "window", LogHeaderField.Window },
        { "tail", LogHeaderField.Tail },
        { "head", LogHeaderField.Head },
        { "location", LogHeaderField.Location },
    };

    [Theory]
    [MemberData(nameof(HeaderDamage))]
    public void OpenAndInspectJudgeAHeaderAlike(string damage, LogHeaderField field)
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = LogTests.NewLog(mapping, 16 * 1024);
        log.Append(LogTests.Payload(0, 20));
        log.Dispose();
        long offset = log.Offset;
        Span<byte> header = mapping.GetSpan(offset, LogFormat.HeaderLength);
        bool reseal = true;
        switch (damage)
        {
            case "magic": header[3] ^= 1; reseal = false; break;
            case "version": BinaryPrimitives.WriteUInt16LittleEndian(header[FormatHeader.MajorOffset..], 99); break;
            case "older": BinaryPrimitives.WriteUInt16LittleEndian(header[FormatHeader.MajorOffset..], 2); BinaryPrimitives.WriteUInt16LittleEndian(header[FormatHeader.MinorOffset..], 1); break;
            // Format 4 had this header and frames padded to 16 bytes: its short records would be misread.
            case "format4": BinaryPrimitives.WriteUInt16LittleEndian(header[FormatHeader.MajorOffset..], 4); break;
            case "headersize": BinaryPrimitives.WriteUInt32LittleEndian(header[FormatHeader.HeaderSizeOffset..], 64); break;
            case "incompat": BinaryPrimitives.WriteUInt64LittleEndian(header[FormatHeader.IncompatOffset..], 1UL << 40); break;
            case "checksum": header[LogFormat.CapacityOffset] ^= 1; reseal = false; break;
            case "capacity": BinaryPrimitives.WriteInt64LittleEndian(header[LogFormat.CapacityOffset..], 1 << 40); break;
            case "window": BinaryPrimitives.WriteInt64LittleEndian(header[LogFormat.WindowOffset..], 8); break;
            case "tail": BinaryPrimitives.WriteInt64LittleEndian(header[LogFormat.TailWordOffset..], 17); break;
            case "head": BinaryPrimitives.WriteInt64LittleEndian(header[LogFormat.HeadWordOffset..], 1 << 20); break;
            case "location": offset += 4096 * 1000; reseal = false; break;
        }
        if (reseal)
        {
            FormatHeader.Seal(header[..LogFormat.BlockLength]);
        }
        LogFormatException thrown = Assert.Throws<LogFormatException>(() => PmemLog.Open(pool, offset));
        LogInspection inspected = PmemLog.Inspect(mapping, offset, pool.DataOffset);
        Assert.Equal(field, thrown.Field);
        Assert.False(inspected.IsValid);
        Assert.Equal(field, inspected.Problems[0].Field);
        // The library throws the inspection's sentence capitalised, with a final stop.
        Assert.Equal(ThrowingLogProblemSink.Sentence(inspected.Problems[0].Message), thrown.Message);
        pool.Dispose();
    }

    [Fact]
    public void AnUnknownReadOnlyCompatibleFeatureOpensTheLogReadOnlyAndRecoveryWritesNothing()
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = LogTests.NewLog(mapping, 16 * 1024);
        log.Append(LogTests.Payload(0, 20));
        long offset = log.Offset;
        Span<byte> header = mapping.GetSpan(offset, LogFormat.BlockLength);
        BinaryPrimitives.WriteUInt64LittleEndian(header[FormatHeader.RoCompatOffset..], 1UL << 9);
        FormatHeader.Seal(header);
        byte[] before = mapping.GetReadOnlySpan(offset, 16 * 1024).ToArray();

        PmemLog opened = PmemLog.Open(pool, offset);
        Assert.True(opened.IsReadOnly);
        Assert.Single(LogTests.ReadAll(opened));
        InvalidOperationException e = Assert.Throws<InvalidOperationException>(() => opened.Append(LogTests.Payload(1, 20)));
        Assert.Contains("read-only-compatible features this library does not know (0x200)", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, mapping.GetReadOnlySpan(offset, 16 * 1024).ToArray());

        LogInspection inspected = PmemLog.Inspect(mapping, offset, pool.DataOffset);
        LogProblem problem = Assert.Single(inspected.Problems);
        Assert.Equal(LogHeaderField.Features, problem.Field);
        Assert.Equal(PoolProblemSeverity.ReadOnly, problem.Severity);
        Assert.False(inspected.IsValid);
        Assert.Equal(new Version(LogFormat.Major, 0), inspected.FormatVersion);
        pool.Dispose();
    }

    [Fact]
    public void AnUnknownCompatibleFeatureIsANoteAndTheLogOpensWritable()
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = LogTests.NewLog(mapping, 16 * 1024);
        long offset = log.Offset;
        Span<byte> header = mapping.GetSpan(offset, LogFormat.BlockLength);
        BinaryPrimitives.WriteUInt64LittleEndian(header[FormatHeader.CompatOffset..], 1UL << 3);
        FormatHeader.Seal(header);

        PmemLog opened = PmemLog.Open(pool, offset);
        Assert.False(opened.IsReadOnly);
        opened.Append(LogTests.Payload(0, 20));
        LogInspection inspected = PmemLog.Inspect(mapping, offset, pool.DataOffset);
        LogProblem problem = Assert.Single(inspected.Problems);
        Assert.Equal((LogHeaderField.Features, PoolProblemSeverity.Note), (problem.Field!.Value, problem.Severity));
        Assert.True(inspected.IsValid);
        Assert.Equal(1, inspected.Records);
        pool.Dispose();
    }

    [Fact]
    public void InspectReportsDamageBeforeTheTailWordButNotTheEndOfTheRecordsAfterIt()
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = LogTests.NewLog(mapping, 16 * 1024);
        var lsns = Enumerable.Range(0, 6).Select(i => log.Append(LogTests.Payload(i, 40))).ToList();
        log.Dispose(); // the tail word covers all six
        var reopened = PmemLog.Open(pool, log.Offset);
        reopened.Append(LogTests.Payload(6, 40)); // after the tail word
        LogInspection sound = PmemLog.Inspect(mapping, log.Offset, pool.DataOffset);
        Assert.True(sound.IsValid);
        Assert.Equal(7, sound.Records);
        Assert.Equal(reopened.Tail, sound.Tail);
        Assert.NotNull(sound.ScanEnd);

        mapping.GetSpan(log.Offset + LogFormat.HeaderLength + lsns[4] + LogFormat.FrameHeaderSize + 3, 1)[0] ^= 0x10;
        LogInspection damaged = PmemLog.Inspect(mapping, log.Offset, pool.DataOffset);
        Assert.Equal(lsns[4], damaged.FirstDamagedLsn);
        Assert.Equal(4, damaged.Records);
        Assert.Equal(lsns[4], Assert.Single(damaged.Problems).Lsn);
        Assert.Contains("fails its checksum", damaged.FirstDamagedProblem, StringComparison.Ordinal);
        // The reader agrees: it stops at the same record with LogCorruptException.
        LogCorruptException e = Assert.Throws<LogCorruptException>(() => LogTests.ReadAll(reopened));
        Assert.Equal(lsns[4], e.Lsn);
        pool.Dispose();
    }
}
