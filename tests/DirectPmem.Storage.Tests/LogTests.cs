using System.Buffers;
using System.Buffers.Binary;
using DirectPmem.Mapping;
using Xunit;

namespace DirectPmem.Storage.Tests;

public sealed class LogTests
{
    internal const string Layout = "log-test";

    internal static (PmemPool Pool, PmemLog Log) NewLog(DaxMapping mapping, long logLength)
    {
        PmemPool pool = TestPools.Create(mapping, Layout);
        PmemLog log = PmemLog.Create(pool, pool.DataOffset, logLength);
        pool.SetRoot(log.Offset);
        return (pool, log);
    }

    internal static byte[] Payload(int seq, int length)
    {
        byte[] data = new byte[length];
        for (int i = 0; i < length; i++)
        {
            data[i] = (byte)(seq * 31 + i * 7 + 1);
        }
        if (length >= 4)
        {
            BinaryPrimitives.WriteInt32LittleEndian(data, seq);
        }
        return data;
    }

    internal static List<(long Lsn, byte[] Payload)> ReadAll(PmemLog log)
    {
        var list = new List<(long, byte[])>();
        foreach (LogRecord record in log.ReadAll())
        {
            list.Add((record.Lsn, record.Payload.ToArray()));
        }
        return list;
    }

    [Fact]
    public void AppendedRecordsReadBackInOrderByLsnAndAfterReopen()
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = NewLog(mapping, 32 * 1024);
        var lsns = new List<long>();
        for (int i = 0; i < 50; i++)
        {
            lsns.Add(log.Append(Payload(i, i * 3)));
        }
        Assert.Equal(0, lsns[0]);
        Assert.Equal(lsns.Last() + PmemLog.FrameLength(49 * 3), log.Tail);
        List<(long Lsn, byte[] Payload)> read = ReadAll(log);
        Assert.Equal(50, read.Count);
        for (int i = 0; i < 50; i++)
        {
            Assert.Equal(lsns[i], read[i].Lsn);
            Assert.Equal(Payload(i, i * 3), read[i].Payload);
            Assert.Equal(i * 3, log.GetRecordLength(lsns[i]));
            byte[] buffer = new byte[200];
            Assert.Equal(i * 3, log.Read(lsns[i], buffer));
            Assert.Equal(Payload(i, i * 3), buffer[..(i * 3)]);
        }
        int fromTen = 0;
        foreach (LogRecord record in log.ReadFrom(lsns[10]))
        {
            Assert.Equal(lsns[10 + fromTen], record.Lsn);
            Assert.Equal(record.NextLsn, 10 + fromTen + 1 < 50 ? lsns[10 + fromTen + 1] : log.Tail);
            fromTen++;
        }
        Assert.Equal(40, fromTen);

        pool.Dispose();
        using PmemPool reopened = PmemPool.Open(mapping, Layout);
        PmemLog again = PmemLog.Open(reopened, reopened.RootOffset);
        Assert.Equal(log.Tail, again.Tail);
        Assert.Equal(read.Select(r => r.Payload), ReadAll(again).Select(r => r.Payload));
    }

    [Fact]
    public void BatchAppendsEveryRecordWithOnePublishAndOffsetsGiveTheirLsns()
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = NewLog(mapping, 32 * 1024);
        using var batch = new LogBatch();
        batch.Add(Payload(0, 10));
        batch.Add(new ReadOnlySequence<byte>(Payload(1, 100)));
        IBufferWriter<byte> writer = batch.BeginRecord();
        writer.Write(Payload(2, 33));
        batch.EndRecord();
        log.Append("first"u8);
        long first = log.Append(batch);
        Assert.Equal(3, batch.Count);
        List<(long Lsn, byte[] Payload)> read = ReadAll(log);
        Assert.Equal(4, read.Count);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(first + batch.GetRecordOffset(i), read[i + 1].Lsn);
        }
        Assert.Equal(Payload(0, 10), read[1].Payload);
        Assert.Equal(Payload(1, 100), read[2].Payload);
        Assert.Equal(Payload(2, 33), read[3].Payload);
        batch.Clear();
        Assert.Throws<ArgumentException>(() => log.Append(batch));
        batch.BeginRecord();
        Assert.Throws<ArgumentException>(() => log.Append(batch));
        Assert.Throws<InvalidOperationException>(() => batch.BeginRecord());
        pool.Dispose();
    }

    [Fact]
    public void MultiSegmentSequenceIsOneRecord()
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = NewLog(mapping, 16 * 1024);
        var first = new Segment(Payload(1, 20));
        Segment last = first.Append(Payload(2, 30)).Append(Payload(3, 5));
        long lsn = log.Append(new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length));
        byte[] expected = [.. Payload(1, 20), .. Payload(2, 30), .. Payload(3, 5)];
        byte[] buffer = new byte[55];
        Assert.Equal(55, log.Read(lsn, buffer));
        Assert.Equal(expected, buffer);
        pool.Dispose();
    }

    [Fact]
    public void FullLogThrowsTypedErrorLosesNothingAndWrapsAfterTruncate()
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = NewLog(mapping, 8192); // capacity 4096
        Assert.Equal(4096, log.Capacity);
        var lsns = new List<long>();
        int seq = 0;
        while (true)
        {
            try
            {
                lsns.Add(log.Append(Payload(seq, 100)));
                seq++;
            }
            catch (LogFullException e)
            {
                Assert.Equal(PmemLog.FrameLength(100), e.RequiredBytes);
                Assert.True(e.FreeBytes < e.RequiredBytes);
                break;
            }
        }
        long tail = log.Tail;
        Assert.Equal(seq, ReadAll(log).Count);
        Assert.Equal(tail, log.Tail);

        // Consume half and keep appending: records now wrap around the end of the ring.
        int next = 0;
        for (int round = 0; round < 40; round++)
        {
            log.Truncate(lsns[next + 3]);
            next += 3;
            for (int k = 0; k < 3; k++)
            {
                lsns.Add(log.Append(Payload(seq, 100 - k * 7)));
                seq++;
            }
            List<(long Lsn, byte[] Payload)> live = ReadAll(log);
            Assert.Equal(lsns.Count - next, live.Count);
            for (int i = 0; i < live.Count; i++)
            {
                Assert.Equal(lsns[next + i], live[i].Lsn);
                Assert.Equal(next + i, BinaryPrimitives.ReadInt32LittleEndian(live[i].Payload));
            }
        }
        Assert.True(log.Tail > 3 * log.Capacity);
        pool.Dispose();
        using PmemPool reopened = PmemPool.Open(mapping, Layout);
        PmemLog again = PmemLog.Open(reopened, reopened.RootOffset);
        Assert.Equal(log.Head, again.Head);
        Assert.Equal(log.Tail, again.Tail);
        Assert.Equal(lsns.Count - next, ReadAll(again).Count);
    }

    [Fact]
    public void LongAndShortRecordsStartOnALineAndReadBackIntactAcrossTheRingEnd()
    {
        // Frames longer than 256 bytes are written as whole lines, the middle ones straight from the
        // caller; short ones are staged. Every frame is padded to whole lines, so each starts on one
        // (no line holds parts of two records); cover lengths around the line and staging
        // boundaries, and frames that wrap around the ring end.
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = NewLog(mapping, 8192); // capacity 4096: the records wrap many times
        int[] lengths = [239, 240, 241, 255, 20, 256, 257, 300, 447, 448, 449, 1000, 1023, 1024, 1025, 1500];
        var live = new Queue<(long Lsn, int Seq, int Length)>();
        int seq = 0;
        var startsInLine = new HashSet<long>();
        bool wrapped = false;
        for (int round = 0; round < 12; round++)
        {
            foreach (int length in lengths)
            {
                while (log.FreeBytes < PmemLog.FrameLength(length))
                {
                    live.Dequeue();
                    log.Truncate(live.Count > 0 ? live.Peek().Lsn : log.Tail);
                }
                long lsn = log.Append(Payload(seq, length));
                startsInLine.Add(lsn % 64);
                wrapped |= lsn / log.Capacity != (lsn + PmemLog.FrameLength(length) - 1) / log.Capacity;
                live.Enqueue((lsn, seq, length));
                seq++;
                foreach ((long at, int s, int n) in live)
                {
                    byte[] back = new byte[n];
                    Assert.Equal(n, log.Read(at, back));
                    Assert.Equal(Payload(s, n), back);
                }
            }
        }
        Assert.Equal([0L], startsInLine);
        Assert.True(wrapped, "no record wrapped around the ring end");
        pool.Dispose();
        using PmemPool reopened = PmemPool.Open(mapping, Layout);
        var again = ReadAll(PmemLog.Open(reopened, reopened.RootOffset));
        Assert.Equal(live.Select(r => r.Lsn), again.Select(r => r.Lsn));
        Assert.Equal(live.Select(r => Payload(r.Seq, r.Length)), again.Select(r => r.Payload));
    }

    [Theory]
    [InlineData(0, 64)]
    [InlineData(1, 64)]
    [InlineData(48, 64)]
    [InlineData(49, 128)]
    [InlineData(64, 128)]
    [InlineData(240, 256)]
    [InlineData(241, 320)]
    [InlineData(304, 320)]
    [InlineData(305, 384)]
    [InlineData(1008, 1024)]
    [InlineData(1024, 1088)]
    public void FrameLengthPadsEveryFrameToWholeCacheLines(int payload, int frame)
        => Assert.Equal(frame, PmemLog.FrameLength(payload));

    [Fact]
    public void LongRecordsFromALineStayLineAlignedZeroPaddedAndWrap()
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = NewLog(mapping, 8192); // capacity 4096
        // Payloads whose last line is partial (several fills), exactly full (1008: 16 + 1008 = 1024), or only the first line's.
        int[] lengths = [241, 1008, 1024, 1071, 1072, 1073, 300, 1500, 48 + 64 * 4];
        var live = new Queue<(long Lsn, int Seq, int Length)>();
        int seq = 0;
        bool wrapped = false;
        for (int round = 0; round < 8; round++)
        {
            foreach (int length in lengths)
            {
                while (log.FreeBytes < PmemLog.FrameLength(length))
                {
                    live.Dequeue();
                    log.Truncate(live.Count > 0 ? live.Peek().Lsn : log.Tail);
                }
                long lsn = log.Append(Payload(seq, length));
                Assert.Equal(0, lsn % 64);
                wrapped |= lsn / log.Capacity != (lsn + PmemLog.FrameLength(length) - 1) / log.Capacity;
                byte[] padding = new byte[PmemLog.FrameLength(length) - PmemLog.FrameHeaderSize - length];
                log.Ring.CopyFromRing(lsn + PmemLog.FrameHeaderSize + length, padding);
                Assert.All(padding, b => Assert.Equal(0, b));
                live.Enqueue((lsn, seq, length));
                seq++;
                foreach ((long at, int s, int n) in live)
                {
                    byte[] back = new byte[n];
                    Assert.Equal(n, log.Read(at, back));
                    Assert.Equal(Payload(s, n), back);
                }
            }
        }
        Assert.True(wrapped, "no line-aligned record wrapped around the ring end");
        pool.Dispose();
        using PmemPool reopened = PmemPool.Open(mapping, Layout);
        var again = ReadAll(PmemLog.Open(reopened, reopened.RootOffset));
        Assert.Equal(live.Select(r => r.Lsn), again.Select(r => r.Lsn));
        Assert.Equal(live.Select(r => Payload(r.Seq, r.Length)), again.Select(r => r.Payload));
    }

    [Theory]
    [InlineData(1u)]
    [InlineData(2u)]
    [InlineData(3u)]
    public void AnOlderPreviewLogIsRefusedNamingItsVersionAndWhatToDo(uint version)
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = NewLog(mapping, 16 * 1024);
        log.Append(Payload(0, 64));
        long capacity = log.Capacity;
        // The header as formats 1 to 3 wrote it: magic, u32 version @8, capacity @16, nonce @24, window @32,
        // the XxHash3 of [0, 40) @40, the tail word @64 and the head word @128.
        Span<byte> header = mapping.GetSpan(log.Offset, 256);
        header.Clear();
        "DPMLOG01"u8.CopyTo(header);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], version);
        BinaryPrimitives.WriteInt64LittleEndian(header[16..], capacity);
        BinaryPrimitives.WriteInt64LittleEndian(header[24..], 12345);
        BinaryPrimitives.WriteInt64LittleEndian(header[32..], capacity / 2);
        BinaryPrimitives.WriteUInt64LittleEndian(header[40..], System.IO.Hashing.XxHash3.HashToUInt64(header[..40]));
        LogFormatException e = Assert.Throws<LogFormatException>(() => PmemLog.Open(pool, log.Offset));
        Assert.Equal(LogHeaderField.Version, e.Field);
        Assert.Contains($"format version {version}, written by an earlier preview", e.Message, StringComparison.Ordinal);
        Assert.Contains("does not convert older logs", e.Message, StringComparison.Ordinal);
        // Create refuses to overwrite it as it refuses a live log of this format.
        Assert.Throws<LogExistsException>(() => PmemLog.Create(pool, log.Offset, log.Length));
        pool.Dispose();
    }

    [Fact]
    public void RecordLargerThanTheRingIsRefusedAndTheLargestFitsAnEmptyLog()
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = NewLog(mapping, 8192);
        Assert.Throws<ArgumentOutOfRangeException>(() => log.Append(new byte[log.MaxRecordLength + 1]));
        log.Append(new byte[40]);
        log.Truncate(log.Tail);
        long lsn = log.Append(Payload(9, log.MaxRecordLength)); // wraps around the ring end
        byte[] back = new byte[log.MaxRecordLength];
        log.Read(lsn, back);
        Assert.Equal(Payload(9, log.MaxRecordLength), back);
        Assert.Throws<LogFullException>(() => log.Append([]));
        pool.Dispose();
    }

    [Fact]
    public void ARecordCopiedButNotAcknowledgedIsRecoveredWhenItValidates()
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = NewLog(mapping, 16 * 1024);
        log.Append(Payload(0, 40));
        long tail = log.Append(Payload(1, 40)) + PmemLog.FrameLength(40);
        // A record that was copied and drained but whose append never returned (a crash before it completed).
        long reserved = log.Reserve(PmemLog.FrameLength(60));
        log.WriteFrame(reserved, Payload(2, 60));
        log.DrainWrites();
        Assert.Equal(tail, log.Tail);
        PmemLog reopened = PmemLog.Open(pool, pool.RootOffset);
        Assert.Equal(tail + PmemLog.FrameLength(60), reopened.Tail);
        Assert.Equal(Payload(2, 60), ReadAll(reopened)[2].Payload);
        pool.Dispose();
    }

    [Fact]
    public void ARecordInFlightBehindAHoleNeverComesBackAfterTheHoleIsFilled()
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = NewLog(mapping, 16 * 1024);
        log.Append(Payload(0, 40));
        long tail = log.Append(Payload(1, 40)) + PmemLog.FrameLength(40);
        // Two appenders in flight at a crash: the first never wrote its record (a hole), the
        // second's record is intact after it.
        long hole = log.Reserve(PmemLog.FrameLength(60));
        long after = log.Reserve(PmemLog.FrameLength(20));
        log.WriteFrame(after, Payload(9, 20));
        log.DrainWrites();
        PmemLog reopened = PmemLog.Open(pool, pool.RootOffset);
        Assert.Equal(tail, reopened.Tail); // recovery stops at the hole
        Assert.Equal(2, ReadAll(reopened).Count);
        // New records fill the hole exactly; the old record after it, which carries the right LSN
        // for what follows, must not come back: recovery cleared it.
        Assert.Equal(hole, reopened.Append(Payload(3, 60)));
        PmemLog again = PmemLog.Open(pool, pool.RootOffset);
        Assert.Equal(after, again.Tail);
        Assert.Equal([0, 1, 3], ReadAll(again).Select(r => BinaryPrimitives.ReadInt32LittleEndian(r.Payload)));
        pool.Dispose();
    }

    [Fact]
    public void BadLsnsAreRefusedNamingTheProblem()
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = NewLog(mapping, 16 * 1024);
        long a = log.Append(Payload(0, 100));
        long b = log.Append(Payload(1, 100));
        Assert.Equal("lsn", Assert.Throws<ArgumentException>(() => log.Read(a + 8, new byte[200])).ParamName);
        Assert.Equal("lsn", Assert.Throws<ArgumentException>(() => log.Read(a + 32, new byte[200])).ParamName);
        Assert.Equal("lsn", Assert.Throws<ArgumentOutOfRangeException>(() => log.Read(log.Tail, new byte[200])).ParamName);
        Assert.Equal("lsn", Assert.Throws<ArgumentOutOfRangeException>(() => log.Truncate(log.Tail + 16)).ParamName);
        Assert.Equal("lsn", Assert.Throws<ArgumentException>(() => log.Truncate(a + 32)).ParamName);
        Assert.Equal("destination", Assert.Throws<ArgumentException>(() => log.Read(a, new byte[10])).ParamName);
        log.Truncate(b);
        Assert.Equal("lsn", Assert.Throws<ArgumentOutOfRangeException>(() => log.Read(a, new byte[200])).ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => log.ReadFrom(a));
        pool.Dispose();
    }

    [Fact]
    public void ReaderNoticesTruncationPastItsPosition()
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = NewLog(mapping, 16 * 1024);
        log.Append(Payload(0, 10));
        long b = log.Append(Payload(1, 10));
        log.Append(Payload(2, 10));
        LogReader reader = log.ReadAll();
        Assert.True(reader.MoveNext());
        log.Truncate(log.Tail);
        Assert.IsType<InvalidOperationException>(MoveNextError(ref reader));
        Assert.True(b > 0);
        pool.Dispose();
    }

    [Fact]
    public void DamagedDurableRecordIsNeverReturned()
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = NewLog(mapping, 16 * 1024);
        log.Append(Payload(0, 64));
        long b = log.Append(Payload(1, 64));
        mapping.GetSpan(log.Offset + PmemLog.HeaderLength + b + 16 + 10, 1)[0] ^= 0x20;
        LogReader reader = log.ReadAll();
        Assert.True(reader.MoveNext());
        LogCorruptException e = Assert.IsType<LogCorruptException>(MoveNextError(ref reader));
        Assert.Equal(b, e.Lsn);
        Assert.Throws<LogCorruptException>(() => log.Read(b, new byte[64]));
        pool.Dispose();
    }

    public static TheoryData<int, LogHeaderField> HeaderDamage => new()
    {
        { 0, LogHeaderField.Magic },
        { 8, LogHeaderField.Checksum },
        { 41, LogHeaderField.Checksum },
        { 120, LogHeaderField.Checksum },
        { 128, LogHeaderField.Tail },
        { 192 + 7, LogHeaderField.Head },
    };

    [Theory]
    [MemberData(nameof(HeaderDamage))]
    public void OpenNamesTheDamagedHeaderField(int offset, LogHeaderField field)
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = NewLog(mapping, 16 * 1024);
        log.Append(Payload(0, 64));
        mapping.GetSpan(log.Offset + offset, 1)[0] ^= offset == 128 ? (byte)0x08 : (byte)0x80;
        Assert.Equal(field, Assert.Throws<LogFormatException>(() => PmemLog.Open(pool, log.Offset)).Field);
        pool.Dispose();
    }

    [Fact]
    public void OpenAndCreateRefuseBadLocations()
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        using PmemPool pool = TestPools.Create(mapping, Layout);
        Assert.Equal(LogHeaderField.Location, Assert.Throws<LogFormatException>(() => PmemLog.Open(pool, 4096)).Field);
        Assert.Equal(LogHeaderField.Location, Assert.Throws<LogFormatException>(() => PmemLog.Open(pool, pool.DataOffset + 100)).Field);
        Assert.Equal(LogHeaderField.Location, Assert.Throws<LogFormatException>(() => PmemLog.Open(pool, pool.Size - 4096)).Field);
        Assert.Equal(LogHeaderField.Magic, Assert.Throws<LogFormatException>(() => PmemLog.Open(pool, pool.DataOffset)).Field);
        Assert.Equal("offset", Assert.Throws<ArgumentOutOfRangeException>(() => PmemLog.Create(pool, 0, 8192)).ParamName);
        Assert.Equal("length", Assert.Throws<ArgumentOutOfRangeException>(() => PmemLog.Create(pool, pool.DataOffset, 4096)).ParamName);
        Assert.Equal("length", Assert.Throws<ArgumentOutOfRangeException>(() => PmemLog.Create(pool, pool.DataOffset, pool.Size)).ParamName);
    }

    [Fact]
    public void ReaderDoesNotAllocatePerRecord()
    {
        using DaxMapping mapping = PoolTests.NewMapping(1 << 20);
        var (pool, log) = NewLog(mapping, 512 * 1024);
        for (int i = 0; i < 1000; i++)
        {
            log.Append(Payload(i, 48));
        }
        long sum = Count(log); // warm up
        long before = GC.GetAllocatedBytesForCurrentThread();
        sum += Count(log);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(2000, sum);
        Assert.Equal(0, allocated);
        pool.Dispose();
    }

    private static long Count(PmemLog log)
    {
        long n = 0;
        foreach (LogRecord record in log.ReadAll())
        {
            n += record.Payload.Length == 48 ? 1 : 0;
        }
        return n;
    }

    [Fact]
    public void AppendDoesNotAllocate()
    {
        using DaxMapping mapping = PoolTests.NewMapping(1 << 20);
        var (pool, log) = NewLog(mapping, 512 * 1024);
        byte[] small = Payload(1, 64);
        byte[] large = Payload(2, 3000);
        log.Append(small);
        log.Append(large);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            log.Append(small);
            log.Append(large);
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        pool.Dispose();
    }

    internal static Exception? MoveNextError(ref LogReader reader)
    {
        try
        {
            reader.MoveNext();
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(byte[] data) => Memory = data;

        public Segment Append(byte[] data)
        {
            var next = new Segment(data) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }
}
