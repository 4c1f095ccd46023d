using System.Buffers.Binary;
using DirectPmem.Mapping;
using Xunit;

namespace DirectPmem.Storage.Tests;

/// <summary>
/// Simulated power failures at every drain of log workloads: after recovery every acknowledged
/// record is present and intact, records are a gap-free run of the appended sequence (no torn or
/// phantom record), and the pool header validates or is repaired.
/// </summary>
public sealed class LogCrashTests(ITestOutputHelper output)
{
    private const string Layout = LogTests.Layout;

    internal static int LengthOf(int seq) => seq * 37 % 211 + (seq % 3 == 0 ? 0 : 9);

    internal static byte[] Record(int seq) => LogTests.Payload(seq, Math.Max(4, LengthOf(seq)));

    private static void SetupPoolAndLog(DaxMapping map, long logLength)
    {
        PmemPool pool = TestPools.Create(map, Layout);
        PmemLog log = PmemLog.Create(pool, pool.DataOffset, logLength);
        pool.SetRoot(log.Offset);
    }

    private static PmemLog OpenLog(DaxMapping map) => PmemLog.Open(PmemPool.Open(map, Layout), PoolHeader.ReservedAreaOffset + PoolDirectory.Length);

    /// <summary>Recovers and checks: a gap-free, intact run of the sequence covering every acknowledged record not truncated.</summary>
    internal static void CheckRecovered(PmemLog log, CrashSweep.Progress progress, Func<int, byte[]>? recordOf = null)
    {
        recordOf ??= Record;
        int? first = null;
        int previous = -1;
        foreach (LogRecord record in log.ReadAll())
        {
            int seq = BinaryPrimitives.ReadInt32LittleEndian(record.Payload);
            if (!record.Payload.SequenceEqual(recordOf(seq)))
            {
                throw new InvalidDataException($"record at LSN {record.Lsn} (seq {seq}) is not the record appended");
            }
            if (first is not null && seq != previous + 1)
            {
                throw new InvalidDataException($"record seq {seq} follows seq {previous}: a gap or a phantom");
            }
            first ??= seq;
            previous = seq;
        }
        if (first is not null && first < progress.Truncated)
        {
            throw new InvalidDataException($"record seq {first} is back although the truncation before seq {progress.Truncated} was acknowledged");
        }
        long keptFrom = Math.Max(progress.TruncateBegun, 0);
        foreach (long acked in progress.Acked)
        {
            if (acked >= keptFrom && (first is null || acked < first || acked > previous))
            {
                throw new InvalidDataException($"acknowledged record seq {acked} is missing (recovered seq {first}..{previous}, truncated before {progress.Truncated})");
            }
        }
    }

    private void Report(string name, (int Points, long Images) result, int minimumImages)
    {
        output.WriteLine($"{name}: {result.Points} crash points, {result.Images} images");
        Knobs.Record($"sweep {name}: {result.Points} crash points, {result.Images} images");
        Assert.True(result.Images >= minimumImages, $"{name} tried only {result.Images} images");
    }

    [Fact]
    public void SingleRecordAppendsIncludingLogCreationSurviveEveryCrash()
    {
        var sweep = new CrashSweep
        {
            Setup = map => TestPools.Create(map, Layout),
            Workload = (map, progress) =>
            {
                PmemPool pool = PmemPool.Open(map, Layout);
                PmemLog log = PmemLog.Create(pool, pool.DataOffset, 16 * 1024);
                pool.SetRoot(log.Offset);
                for (int seq = 0; seq < 30; seq++)
                {
                    log.Append(Record(seq));
                    progress.Ack(seq);
                }
            },
            Check = (map, progress) =>
            {
                PmemPool pool = PmemPool.Open(map, Layout);
                if (pool.RootOffset == 0)
                {
                    Assert.Empty(progress.Acked); // the log was never made reachable
                    return;
                }
                CheckRecovered(PmemLog.Open(pool, pool.RootOffset), progress);
            },
        };
        Report("single", sweep.Run(), 1000);
    }

    [Fact]
    public void BatchAppendsSurviveEveryCrash()
    {
        var sweep = new CrashSweep
        {
            Setup = map => SetupPoolAndLog(map, 16 * 1024),
            Workload = (map, progress) =>
            {
                PmemLog log = OpenLog(map);
                using var batch = new LogBatch();
                int seq = 0;
                for (int b = 0; b < 8; b++)
                {
                    batch.Clear();
                    int first = seq;
                    for (int i = 0; i < 1 + b % 5; i++)
                    {
                        batch.Add(Record(seq++));
                    }
                    log.Append(batch);
                    for (int s = first; s < seq; s++)
                    {
                        progress.Ack(s);
                    }
                }
            },
            Check = (map, progress) => CheckRecovered(OpenLog(map), progress),
        };
        Report("batch", sweep.Run(), 300);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void ConcurrentAppendersInterleavedDeterministicallySurviveEveryCrash(int appenders)
    {
        // Each round runs the protocol's steps for N appenders in an adversarial but fixed order:
        // reserve in order, copy in reverse, drain, complete as soon as allowed (tried in reverse).
        var sweep = new CrashSweep
        {
            Setup = map => SetupPoolAndLog(map, 48 * 1024),
            Workload = (map, progress) =>
            {
                PmemLog log = OpenLog(map);
                int seq = 0;
                for (int round = 0; round < 8; round++)
                {
                    var starts = new long[appenders];
                    var ends = new long[appenders];
                    var records = new byte[appenders][];
                    for (int a = 0; a < appenders; a++)
                    {
                        records[a] = Record(seq + a);
                        starts[a] = log.Reserve(PmemLog.FrameLength(records[a].Length));
                        ends[a] = starts[a] + PmemLog.FrameLength(records[a].Length);
                    }
                    for (int a = appenders - 1; a >= 0; a--)
                    {
                        log.WriteFrame(starts[a], records[a]);
                        if ((a + round) % 2 == 0)
                        {
                            log.DrainWrites(); // this appender drains now, the others later
                        }
                    }
                    log.DrainWrites();
                    var completed = new bool[appenders];
                    int acked = 0;
                    int done = 0;
                    while (done < appenders)
                    {
                        for (int a = appenders - 1; a >= 0; a--)
                        {
                            if (!completed[a] && log.TryComplete(starts[a], ends[a]))
                            {
                                completed[a] = true;
                                done++;
                                // In round 1 the first appender publishes alone before the others complete.
                                if (round % 3 == 1 && a == 0)
                                {
                                    break;
                                }
                            }
                        }
                        // An append returns once the completion cursor (the tail) covers it: nothing is published.
                        long tail = log.Tail;
                        while (acked < appenders && ends[acked] <= tail)
                        {
                            progress.Ack(seq + acked++);
                        }
                    }
                    Assert.Equal(appenders, acked);
                    seq += appenders;
                }
            },
            Check = (map, progress) => CheckRecovered(OpenLog(map), progress),
        };
        Report($"concurrent{appenders}", sweep.Run(), 300);
    }

    [Fact]
    public void AppendersCompletedByTheirPredecessorSurviveEveryCrash()
    {
        // Completion with help: three appenders per round; the third drains and announces first,
        // the first completes (over the second too in odd rounds, where the second announced
        // before), and the second completes last, moving the cursor over the announced third.
        // Acknowledgements follow the tail, as in an append that returns once the cursor covers it.
        var sweep = new CrashSweep
        {
            Setup = map => SetupPoolAndLog(map, 16 * 1024),
            Workload = (map, progress) =>
            {
                PmemLog log = OpenLog(map);
                int acked = 0;
                var ends = new List<long>();
                void AckCovered()
                {
                    long tail = log.Tail;
                    while (acked < ends.Count && ends[acked] <= tail)
                    {
                        progress.Ack(acked++);
                    }
                }
                for (int round = 0; round < 8; round++)
                {
                    int seq = round * 3;
                    byte[][] records = [Record(seq), Record(seq + 1), Record(seq + 2)];
                    long[] starts = new long[3];
                    for (int a = 0; a < 3; a++)
                    {
                        starts[a] = log.Reserve(PmemLog.FrameLength(records[a].Length));
                        ends.Add(starts[a] + PmemLog.FrameLength(records[a].Length));
                    }
                    log.WriteFrame(starts[2], records[2]);
                    log.DrainWrites();
                    Assert.False(log.TryComplete(starts[2], ends[seq + 2]));
                    bool secondFirst = round % 2 == 1;
                    if (secondFirst)
                    {
                        log.WriteFrame(starts[1], records[1]);
                        log.DrainWrites();
                        Assert.False(log.TryComplete(starts[1], ends[seq + 1]));
                    }
                    log.WriteFrame(starts[0], records[0]);
                    log.DrainWrites();
                    Assert.True(log.TryComplete(starts[0], ends[seq]));
                    Assert.Equal(secondFirst ? ends[seq + 2] : starts[1], log.Tail);
                    AckCovered();
                    if (!secondFirst)
                    {
                        log.WriteFrame(starts[1], records[1]);
                        log.DrainWrites();
                        Assert.True(log.TryComplete(starts[1], ends[seq + 1]));
                    }
                    Assert.Equal(ends[seq + 2], log.Tail);
                    Assert.True(log.TryComplete(starts[2], ends[seq + 2]));
                    AckCovered();
                }
                Assert.Equal(24, acked);
            },
            Check = (map, progress) => CheckRecovered(OpenLog(map), progress),
        };
        Report("helped", sweep.Run(), 200);
    }

    [Fact]
    public void ALogThatAnnouncesARecordBeforeItsDrainIsCaughtBySweep()
    {
        // The negative control of completion with help: the second appender announces its record
        // before writing and draining it, so the first appender's completion acknowledges it while
        // it is not durable, and some crash before its drain loses it.
        var sweep = new CrashSweep
        {
            Setup = map => SetupPoolAndLog(map, 16 * 1024),
            Workload = (map, progress) =>
            {
                PmemLog log = OpenLog(map);
                for (int seq = 0; seq < 8; seq += 2)
                {
                    byte[] first = Record(seq);
                    byte[] second = Record(seq + 1);
                    long a = log.Reserve(PmemLog.FrameLength(first.Length));
                    long b = log.Reserve(PmemLog.FrameLength(second.Length));
                    long end = b + PmemLog.FrameLength(second.Length);
                    Assert.False(log.TryComplete(b, end)); // announced too early
                    log.WriteFrame(a, first);
                    log.DrainWrites();
                    Assert.True(log.TryComplete(a, b));
                    Assert.Equal(end, log.Tail);
                    progress.Ack(seq);
                    progress.Ack(seq + 1);
                    log.WriteFrame(b, second);
                    log.DrainWrites();
                }
            },
            Check = (map, progress) => CheckRecovered(OpenLog(map), progress),
        };
        InvalidOperationException caught = Assert.Throws<InvalidOperationException>(() => sweep.Run());
        Assert.Contains("is missing", caught.Message, StringComparison.Ordinal);
        output.WriteLine(caught.Message.Split('\n')[0]);
    }

    [Fact]
    public void RecoveryAfterAHoleAndTheAppendsThatFillItSurviveEveryCrash()
    {
        // The state a crash left: records 0 and 1 acknowledged, then two appenders in flight: the
        // first never wrote (a hole), the second's record (seq 9) is whole after it. The workload
        // is the next life: recovery (clearing the window, persisting the tail word), then appends
        // that fill the hole exactly. A crash anywhere must never bring seq 9 back.
        var sweep = new CrashSweep
        {
            Setup = map =>
            {
                SetupPoolAndLog(map, 16 * 1024);
                PmemLog log = OpenLog(map);
                log.Append(LogTests.Payload(0, 40));
                log.Append(LogTests.Payload(1, 40));
                long hole = log.Reserve(PmemLog.FrameLength(60));
                long after = log.Reserve(PmemLog.FrameLength(20));
                log.WriteFrame(after, LogTests.Payload(9, 20));
                log.DrainWrites();
            },
            Workload = (map, progress) =>
            {
                PmemLog log = OpenLog(map);
                log.Append(LogTests.Payload(3, 60)); // exactly over the hole
                progress.Ack(3);
                log.Append(LogTests.Payload(4, 20));
                progress.Ack(4);
            },
            Check = (map, progress) =>
            {
                var seqs = LogTests.ReadAll(OpenLog(map)).Select(r => BinaryPrimitives.ReadInt32LittleEndian(r.Payload)).ToList();
                Assert.DoesNotContain(9, seqs);
                Assert.Equal([0, 1], seqs.Take(2));
                Assert.Equal(new[] { 3, 4 }.Take(seqs.Count - 2), seqs.Skip(2));
                Assert.True(seqs.Count - 2 >= progress.Acked.Count, $"acknowledged {progress.Acked.Count}, recovered {string.Join(",", seqs)}");
            },
        };
        Report("refill", sweep.Run(), 20);
    }

    [Fact]
    public void ALogWhoseAppendSkipsItsDrainIsCaughtBySweep()
    {
        // The negative control: the production steps with the one fence left out. An append is
        // acknowledged while its record is only flushed, so some crash before the next drain loses it.
        var sweep = new CrashSweep
        {
            Setup = map => SetupPoolAndLog(map, 16 * 1024),
            Workload = (map, progress) =>
            {
                PmemLog log = OpenLog(map);
                for (int seq = 0; seq < 6; seq++)
                {
                    byte[] record = Record(seq);
                    int frame = PmemLog.FrameLength(record.Length);
                    long start = log.Reserve(frame);
                    log.WriteFrame(start, record);
                    Assert.True(log.TryComplete(start, start + frame)); // no DrainWrites
                    progress.Ack(seq);
                }
            },
            Check = (map, progress) => CheckRecovered(OpenLog(map), progress),
        };
        InvalidOperationException caught = Assert.Throws<InvalidOperationException>(() => sweep.Run());
        Assert.Contains("is missing", caught.Message, StringComparison.Ordinal);
        output.WriteLine(caught.Message.Split('\n')[0]);
    }

    // Mostly 241 to 1340 bytes: frames past the 256-byte staging limit, written as whole lines with the
    // middle ones straight from the caller. Every third record is short (20 to 68 bytes: a staged
    // frame of one or two lines), so that staged and streamed frames alternate.
    internal static byte[] LongRecord(int seq)
        => LogTests.Payload(seq, seq % 3 == 2 ? 20 + seq * 16 % 64 : 241 + seq * 379 % 1100);

    [Fact]
    public void LongRecordsStreamedFromTheCallerWrappingAndTruncatedSurviveEveryCrash()
    {
        var sweep = new CrashSweep
        {
            Setup = map => SetupPoolAndLog(map, 8192), // a 4 KiB ring: most records wrap or follow one that did
            Workload = (map, progress) =>
            {
                PmemLog log = OpenLog(map);
                var lsns = new List<long>();
                int head = 0;
                for (int seq = 0; seq < 12; seq++)
                {
                    byte[] record = LongRecord(seq);
                    while (log.FreeBytes < PmemLog.FrameLength(record.Length))
                    {
                        head++;
                        progress.BeginTruncate(head);
                        log.Truncate(lsns[head]);
                        progress.AckTruncate(head);
                    }
                    lsns.Add(log.Append(record));
                    progress.Ack(seq);
                }
            },
            Check = (map, progress) => CheckRecovered(OpenLog(map), progress, LongRecord),
        };
        Report("long", sweep.Run(), 500);
    }

    [Fact]
    public void WrapAndTruncateSurviveEveryCrash()
    {
        var sweep = new CrashSweep
        {
            Setup = map => SetupPoolAndLog(map, 8192), // a 4 KiB ring: the records wrap several times
            Workload = (map, progress) =>
            {
                PmemLog log = OpenLog(map);
                var lsns = new List<long>();
                int head = 0;
                for (int seq = 0; seq < 100; seq++)
                {
                    byte[] record = Record(seq);
                    while (log.FreeBytes < PmemLog.FrameLength(record.Length))
                    {
                        head += 2;
                        progress.BeginTruncate(head);
                        log.Truncate(lsns[head]);
                        progress.AckTruncate(head);
                    }
                    lsns.Add(log.Append(record));
                    progress.Ack(seq);
                }
            },
            Check = (map, progress) => CheckRecovered(OpenLog(map), progress),
        };
        Report("wrap", sweep.Run(), 2000);
    }
}
