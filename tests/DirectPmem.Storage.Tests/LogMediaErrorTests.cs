using DirectPmem.Mapping;
using Xunit;

namespace DirectPmem.Storage.Tests;

/// <summary>
/// Issue 19 for the log, host tier: a real SIGBUS under log recovery and log reads (the pool file
/// truncated under its mapping) is a reported loss in LSNs, never a crash: recovery stops at the
/// record before it or skips it as the log was opened (and opens the log read-only, writing nothing,
/// so every open does the same), a reader throws a typed error or skips to the next record, and the
/// inspection reports the same LSN. A log at the end of the pool whose records wrap around the ring
/// puts an unreadable page in the middle of the records: those that wrapped to the ring's start read.
/// </summary>
public sealed class LogMediaErrorTests : IDisposable
{
    private const long PoolSize = 4L << 20;
    private readonly List<string> _dirs = [];

    public void Dispose()
    {
        foreach (string dir in _dirs)
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void RecoveryThatMeetsATruncatedRingStopsAtTheRecordBeforeItOpensReadOnlyAndDoesTheSameOnTheNextOpen()
    {
        string path = NewPoolPath();
        long logOffset;
        var lsns = new List<long>();
        using (PmemPool pool = TestPools.CreateFile(path, PoolSize, LogTests.Layout))
        {
            PmemLog log = PmemLog.Create(pool, pool.DataOffset, 1L << 20);
            pool.SetRoot(log.Offset);
            logOffset = log.Offset;
            for (int seq = 0; seq < 200; seq++)
            {
                lsns.Add(log.Append(LogTests.Payload(seq, 500))); // 100 KiB, all after the tail word (not disposed)
            }
        }
        long cut = logOffset + PmemLog.HeaderLength + (48L << 10); // the file ends 48 KiB into the ring
        using PmemFile file = PmemFile.Open(path, writable: true);
        using DaxMapping mapping = file.Map();
        using PmemPool reopened = PmemPool.Open(mapping, LogTests.Layout);
        Truncation.Truncate(path, cut);
        long firstLost = lsns.First(l => logOffset + PmemLog.HeaderLength + l + PmemLog.FrameLength(500) > cut);
        int intact = lsns.IndexOf(firstLost);
        long lossesBefore = Volatile.Read(ref Diagnostics.StorageCounts.s_mediaLosses);
        using var events = new MediaLossEvents();
        for (int attempt = 0; attempt < 2; attempt++)
        {
            using PmemLog log = PmemLog.Open(reopened, logOffset);
            LogMediaLoss loss = Assert.IsType<LogMediaLoss>(log.RecoveryLoss);
            Assert.Equal(firstLost, loss.StartLsn);
            Assert.False(loss.Resumed); // nothing after the cut reads
            Assert.Equal(MediaErrorKind.BeyondEndOfFile, loss.MediaError.Kind);
            Assert.Equal(firstLost, log.Tail);
            Assert.True(log.IsReadOnly);
            InvalidOperationException refused = Assert.Throws<InvalidOperationException>(() => log.Append(LogTests.Payload(0, 10)));
            Assert.Contains($"LSNs [{firstLost}, ", refused.Message, StringComparison.Ordinal);
            List<(long Lsn, byte[] Payload)> records = LogTests.ReadAll(log);
            Assert.Equal(lsns.Take(intact), records.Select(r => r.Lsn));
            Assert.Equal(LogTests.Payload(intact - 1, 500), records[^1].Payload);
        }
        Assert.True(Volatile.Read(ref Diagnostics.StorageCounts.s_mediaLosses) >= lossesBefore + 2);
        // The Error-level event, once per open (other tests may raise their own at the same time).
        Assert.True(events.Count(logOffset, firstLost) >= 2, events.Describe());
        LogInspection inspection = PmemLog.Inspect(mapping, logOffset, reopened.DataOffset);
        Assert.Equal(firstLost, inspection.FirstDamagedLsn);
        Assert.Equal(intact, inspection.Records);
        Assert.Contains("media error", inspection.FirstDamagedProblem, StringComparison.Ordinal);
        Assert.False(mapping.IsDisposed);
    }

    [Theory]
    [InlineData(LogMediaErrorPolicy.Stop)]
    [InlineData(LogMediaErrorPolicy.Skip)]
    public void RecoveryOverAnUnreadablePageInTheMiddleOfTheUnpersistedRecordsStopsOrSkipsAsAskedAndReportsTheGap(LogMediaErrorPolicy policy)
    {
        WrappedLog w = MakeWrappedLog(disposeLog: false);
        using PmemFile file = PmemFile.Open(w.Path, writable: true);
        using DaxMapping mapping = file.Map();
        using PmemPool pool = PmemPool.Open(mapping, LogTests.Layout);
        Truncation.Truncate(w.Path, PoolSize - 4096); // the ring's last page; the records that wrapped to its start still read
        for (int attempt = 0; attempt < 2; attempt++)
        {
            using PmemLog log = PmemLog.Open(pool, w.Offset, new LogOpenOptions { MediaErrorPolicy = policy });
            LogMediaLoss loss = Assert.IsType<LogMediaLoss>(log.RecoveryLoss);
            Assert.Equal(w.FirstLost, loss.StartLsn);
            Assert.True(loss.Resumed);
            Assert.Equal(w.FirstAfter, loss.EndLsn);
            Assert.Equal(MediaErrorKind.BeyondEndOfFile, loss.MediaError.Kind);
            Assert.True(log.IsReadOnly);
            Assert.Equal(policy, log.MediaErrorPolicy);
            var read = new List<(long Lsn, byte[] Payload)>();
            LogReader reader = log.ReadAll();
            try
            {
                if (policy == LogMediaErrorPolicy.Stop)
                {
                    Assert.Equal(w.FirstLost, log.Tail);
                    while (reader.MoveNext())
                    {
                        read.Add((reader.Current.Lsn, reader.Current.Payload.ToArray()));
                    }
                    Assert.Equal(w.Records.Where(r => r.Lsn < w.FirstLost), read, RecordComparer.Instance);
                }
                else
                {
                    Assert.Equal(w.Records[^1].Lsn + PmemLog.FrameLength(500), log.Tail);
                    while (reader.MoveNext())
                    {
                        read.Add((reader.Current.Lsn, reader.Current.Payload.ToArray()));
                    }
                    // The reader meets the same page and skips it the same way.
                    Assert.Equal(w.Records.Where(r => r.Lsn < w.FirstLost || r.Lsn >= w.FirstAfter), read, RecordComparer.Instance);
                    LogMediaLoss seen = Assert.Single(reader.Losses);
                    Assert.Equal((w.FirstLost, w.FirstAfter), (seen.StartLsn, seen.EndLsn));
                }
            }
            finally
            {
                reader.Dispose();
            }
        }
    }

    [Theory]
    [InlineData(LogMediaErrorPolicy.Stop)]
    [InlineData(LogMediaErrorPolicy.Skip)]
    public void AReaderOverAnUnreadablePageBeforeTheTailWordStopsWithATypedErrorOrSkipsToTheNextRecord(LogMediaErrorPolicy policy)
    {
        WrappedLog w = MakeWrappedLog(disposeLog: true); // the tail word covers every record: recovery scans nothing
        using PmemFile file = PmemFile.Open(w.Path, writable: true);
        using DaxMapping mapping = file.Map();
        using PmemPool pool = PmemPool.Open(mapping, LogTests.Layout);
        Truncation.Truncate(w.Path, PoolSize - 4096);
        using PmemLog log = PmemLog.Open(pool, w.Offset, new LogOpenOptions { MediaErrorPolicy = policy });
        Assert.Null(log.RecoveryLoss);
        var read = new List<(long Lsn, byte[] Payload)>();
        if (policy == LogMediaErrorPolicy.Stop)
        {
            LogMediaErrorException e = Assert.Throws<LogMediaErrorException>(() =>
            {
                foreach (LogRecord record in log.ReadAll())
                {
                    read.Add((record.Lsn, record.Payload.ToArray()));
                }
            });
            Assert.Equal(w.FirstLost, e.Lsn);
            LogMediaLoss loss = Assert.IsType<LogMediaLoss>(e.Loss);
            Assert.Equal((w.FirstLost, w.FirstAfter, true), (loss.StartLsn, loss.EndLsn, loss.Resumed));
            Assert.Contains("LogReader.MoveNext", e.Message, StringComparison.Ordinal);
            Assert.Equal(w.Records.Where(r => r.Lsn < w.FirstLost), read, RecordComparer.Instance);
        }
        else
        {
            LogReader reader = log.ReadAll();
            foreach (LogRecord record in reader)
            {
                read.Add((record.Lsn, record.Payload.ToArray()));
            }
            Assert.Equal(w.Records.Where(r => r.Lsn < w.FirstLost || r.Lsn >= w.FirstAfter), read, RecordComparer.Instance);
            LogMediaLoss loss = Assert.Single(reader.Losses); // foreach enumerated a copy: the list is shared
            Assert.Equal((w.FirstLost, w.FirstAfter), (loss.StartLsn, loss.EndLsn));
            Assert.Contains($"LSNs [{w.FirstLost}, {w.FirstAfter})", loss.ToString(), StringComparison.Ordinal);
        }
        // dpmem check's inspection names the record, the bad range in pool offsets and where the records resume.
        LogInspection inspection = PmemLog.Inspect(mapping, w.Offset, pool.DataOffset);
        Assert.Equal(w.FirstLost, inspection.FirstDamagedLsn);
        LogProblem problem = Assert.Single(inspection.Problems);
        long badPage = PoolSize - 4096;
        Assert.Contains($"bad range [0x{badPage:x}, 0x", problem.Message, StringComparison.Ordinal);
        Assert.Contains($"the records resume at LSN {w.FirstAfter}", problem.Message, StringComparison.Ordinal);
        // The zero-copy reader hands out the same bytes for a record on good media (it is not driven onto the bad page: that is a SIGBUS).
        LogReader zero = log.ReadAll(LogReadMode.ZeroCopy);
        Assert.True(zero.MoveNext());
        Assert.Equal(w.Records[0].Payload, zero.Current.Payload.ToArray());
        zero.Dispose();
        // The log stays writable: the bad page lies behind the tail.
        long appended = log.Append(LogTests.Payload(1000, 500));
        byte[] back = new byte[500];
        Assert.Equal(500, log.Read(appended, back));
        Assert.Equal(LogTests.Payload(1000, 500), back);
    }

    [Fact]
    public void OpenRefusesAnUndefinedMediaErrorPolicyAndReadAllAnUndefinedMode()
    {
        using DaxMapping mapping = PoolTests.NewMapping();
        var (pool, log) = LogTests.NewLog(mapping, 32 * 1024);
        using (pool)
        {
            Assert.Equal("options", Assert.Throws<ArgumentOutOfRangeException>(() => PmemLog.Open(pool, log.Offset, new LogOpenOptions { MediaErrorPolicy = (LogMediaErrorPolicy)7 })).ParamName);
            Assert.Equal("mode", Assert.Throws<ArgumentOutOfRangeException>(() => log.ReadAll((LogReadMode)5)).ParamName);
        }
    }

    private sealed record WrappedLog(string Path, long Offset, List<(long Lsn, byte[] Payload)> Records, long FirstLost, long FirstAfter);

    // A 64 KiB log at the end of the pool file whose live records wrap around the end of the ring: a
    // truncation of the file's last page makes the records on it unreadable while those that wrapped to
    // the ring's start still read. With disposeLog false the wrapped records lie after the tail word
    // (a crash: recovery scans them), with true before it.
    private WrappedLog MakeWrappedLog(bool disposeLog)
    {
        string path = NewPoolPath();
        const long logLength = 64 << 10;
        const long capacity = logLength - PmemLog.HeaderLength;
        int frame = PmemLog.FrameLength(500);
        long offset = PoolSize - logLength;
        var records = new List<(long Lsn, byte[] Payload)>();
        using (PmemPool pool = TestPools.CreateFile(path, PoolSize, LogTests.Layout))
        {
            PmemLog log = PmemLog.Create(pool, offset, logLength);
            pool.SetRoot(offset);
            int seq = 0;
            long last = 0;
            while (last + frame < capacity - 6 * 1024)
            {
                last = log.Append(LogTests.Payload(seq++, 500));
            }
            log.Truncate(last); // persists the tail word past every record so far
            records.Add((last, LogTests.Payload(seq - 1, 500)));
            // Less than half the window (15 KiB) of records: the tail word stays where Truncate put it.
            while (last < capacity + 2 * 1024)
            {
                byte[] payload = LogTests.Payload(seq++, 500);
                last = log.Append(payload);
                records.Add((last, payload));
            }
            Assert.Equal(records[0].Lsn, log.Head);
            if (disposeLog)
            {
                log.Dispose();
            }
        }
        const long lastPage = capacity - 4096; // ring offset of the page the truncation removes
        long firstLost = records.First(r => r.Lsn % capacity + frame > lastPage && r.Lsn < capacity).Lsn;
        // The first record whose frame starts after the ring's end wrapped to its start: the one
        // before it starts on the removed page (its header is lost) and wraps.
        long firstAfter = records.First(r => r.Lsn >= capacity).Lsn;
        Assert.True(firstLost < capacity - frame && firstAfter > capacity, $"the setup puts records on both sides of the wrap ({firstLost}, {firstAfter})");
        return new WrappedLog(path, offset, records, firstLost, firstAfter);
    }

    private sealed class RecordComparer : IEqualityComparer<(long Lsn, byte[] Payload)>
    {
        internal static readonly RecordComparer Instance = new();

        public bool Equals((long Lsn, byte[] Payload) x, (long Lsn, byte[] Payload) y) => x.Lsn == y.Lsn && x.Payload.AsSpan().SequenceEqual(y.Payload);

        public int GetHashCode((long Lsn, byte[] Payload) obj) => obj.Lsn.GetHashCode();
    }

    [Fact]
    public void AReadOfARecordOnATruncatedPageFailsTypedAndTheRecordsBeforeItStillRead()
    {
        string path = NewPoolPath();
        using PmemPool pool = TestPools.CreateFile(path, PoolSize, LogTests.Layout);
        using PmemLog log = PmemLog.Create(pool, pool.DataOffset, 1L << 20);
        var lsns = new List<long>();
        for (int seq = 0; seq < 200; seq++)
        {
            lsns.Add(log.Append(LogTests.Payload(seq, 500)));
        }
        long cut = log.Offset + PmemLog.HeaderLength + (48L << 10);
        Truncation.Truncate(path, cut);
        long lost = lsns.First(l => log.Offset + PmemLog.HeaderLength + l + PmemLog.FrameLength(500) > cut);
        byte[] buffer = new byte[500];
        for (int attempt = 0; attempt < 2; attempt++)
        {
            LogMediaErrorException e = Assert.Throws<LogMediaErrorException>(() => log.Read(lost, buffer));
            Assert.Equal(lost, e.Lsn);
            Assert.Equal(MediaErrorKind.BeyondEndOfFile, e.MediaError.Kind);
            Assert.Contains("PmemLog.Read", e.Message, StringComparison.Ordinal);
        }
        long past = lsns[^1];
        Assert.Equal(past, Assert.Throws<LogMediaErrorException>(() => log.GetRecordLength(past)).Lsn);
        // The records before the cut are whole and still read.
        int before = lsns.IndexOf(lost) - 1;
        Assert.Equal(500, log.Read(lsns[before], buffer));
        Assert.Equal(LogTests.Payload(before, 500), buffer);
    }

    // A pool file on a page-cache file system (truncating it under a mapping gives a real SIGBUS), or a
    // skip saying why there is none or why the safe copy is unavailable.
    private string NewPoolPath()
    {
        string dir = TruncationDirectory.Create("directpmem-logmedia-");
        _dirs.Add(dir);
        return Path.Combine(dir, "pool");
    }
}

/// <summary>Collects the <c>LogMediaLoss</c> events of the <c>DirectPmem.Storage</c> EventSource while it lives.</summary>
internal sealed class MediaLossEvents : System.Diagnostics.Tracing.EventListener
{
    private readonly List<(long LogOffset, long StartLsn)> _seen = [];
    private readonly List<string> _errors = [];

    protected override void OnEventSourceCreated(System.Diagnostics.Tracing.EventSource eventSource)
    {
        if (eventSource.Name == Diagnostics.StorageCounters.EventSourceName)
        {
            EnableEvents(eventSource, System.Diagnostics.Tracing.EventLevel.Error);
        }
    }

    protected override void OnEventWritten(System.Diagnostics.Tracing.EventWrittenEventArgs e)
    {
        lock (_seen)
        {
            if (e.EventName == "LogMediaLoss" && e.Payload is { Count: 3 } p)
            {
                _seen.Add(((long)p[0]!, (long)p[1]!));
            }
            else if (e.EventName == "EventSourceMessage")
            {
                _errors.Add(string.Join(", ", e.Payload ?? []));
            }
        }
    }

    public int Count(long logOffset, long startLsn)
    {
        lock (_seen)
        {
            return _seen.Count(x => x == (logOffset, startLsn));
        }
    }

    public string Describe()
    {
        lock (_seen)
        {
            return $"LogMediaLoss events seen: [{string.Join("; ", _seen)}]; EventSource messages: [{string.Join("; ", _errors)}]";
        }
    }
}
