using DirectPmem.Mapping;

namespace DirectPmem.Storage;

/// <summary>One problem an inspection found in a log.</summary>
public sealed class LogProblem
{
    internal LogProblem(LogHeaderField? field, long? lsn, string message, PoolProblemSeverity severity = PoolProblemSeverity.Error)
    {
        Field = field;
        Lsn = lsn;
        Message = message;
        Severity = severity;
    }

    /// <summary>
    /// How serious it is: <see cref="PoolProblemSeverity.Error"/> refuses the open (a header problem) or stops a reader
    /// (a damaged record), <see cref="PoolProblemSeverity.ReadOnly"/> opens the log read-only, <see cref="PoolProblemSeverity.Note"/>
    /// changes nothing.
    /// </summary>
    public PoolProblemSeverity Severity { get; }

    /// <summary>The header field that failed (what <see cref="PmemLog.Open(PmemPool, long)"/> would report in <see cref="LogFormatException.Field"/>), or null for a damaged record.</summary>
    public LogHeaderField? Field { get; }

    /// <summary>The LSN of the damaged record, or null for a header problem.</summary>
    public long? Lsn { get; }

    /// <summary>What was expected and what was found. A header problem is one sentence without a final stop: <see cref="PmemLog.Open(PmemPool, long)"/> throws it capitalised, with a stop.</summary>
    public string Message { get; }

    /// <inheritdoc/>
    public override string ToString() => Message;
}

/// <summary>
/// What <see cref="PmemLog.Inspect"/> found: the header's fields, the records, and every problem,
/// judged by the same routine <see cref="PmemLog.Open(PmemPool, long)"/> runs (whose sink throws the first one).
/// </summary>
public sealed class LogInspection
{
    internal LogInspection(long offset, IReadOnlyList<LogProblem> problems, long capacity, long head, long tailWord, long tail, long records, long? firstDamagedLsn, string? firstDamagedProblem, string? scanEnd)
    {
        Offset = offset;
        Problems = problems;
        Capacity = capacity;
        Head = head;
        TailWord = tailWord;
        Tail = tail;
        Records = records;
        FirstDamagedLsn = firstDamagedLsn;
        FirstDamagedProblem = firstDamagedProblem;
        ScanEnd = scanEnd;
    }

    /// <summary>Where the log starts.</summary>
    public long Offset { get; }

    /// <summary>Every problem found, header first. Empty when <see cref="PmemLog.Open(PmemPool, long)"/> would succeed without a word and every record before the tail word reads back.</summary>
    public IReadOnlyList<LogProblem> Problems { get; }

    /// <summary>Whether no problem was found beyond notes (<see cref="PoolProblemSeverity.Note"/>).</summary>
    public bool IsValid => Problems.All(p => p.Severity == PoolProblemSeverity.Note);

    /// <summary>The format version the header records (major, minor), or null when no intact header of this format was found (an earlier preview's log has none).</summary>
    public Version? FormatVersion { get; private init; }

    /// <summary>The ring capacity (0 when the header could not be read that far).</summary>
    public long Capacity { get; }

    /// <summary>The head word: the first live LSN.</summary>
    public long Head { get; }

    /// <summary>The tail word as persisted (lazily: the records after it are found by scanning).</summary>
    public long TailWord { get; }

    /// <summary>The tail recovery would find: the end of the last record that validates, scanning on from the tail word.</summary>
    public long Tail { get; }

    /// <summary>The records that read back, from the head to <see cref="Tail"/> (or to the first damaged one).</summary>
    public long Records { get; }

    /// <summary>The first record before the tail word that fails its check (damage, not a crash), or null.</summary>
    public long? FirstDamagedLsn { get; }

    /// <summary>What is wrong with the record at <see cref="FirstDamagedLsn"/>, or null.</summary>
    public string? FirstDamagedProblem { get; }

    /// <summary>Why the scan past the tail word stopped where it did (the record in flight at a crash, or clear space), or null when it did not run.</summary>
    public string? ScanEnd { get; }

    internal static LogInspection Run(DaxMapping mapping, long offset, long dataOffset)
    {
        var sink = new CollectingSink();
        bool usable = LogFormat.Examine(mapping, offset, dataOffset, mapping.Length, sink, out LogLayout layout, out long tailWord, out long head, out Version? version);
        if (!usable)
        {
            return new LogInspection(offset, sink.Problems, layout.Capacity, head, tailWord, tailWord, 0, null, null, null) { FormatVersion = version };
        }
        long ring = offset + LogFormat.HeaderLength;
        long limit = head + layout.Capacity;
        byte[] scratch = new byte[256];
        long records = 0;
        long lsn = head;
        string? problem;
        bool media = false;
        string after = "";
        while (lsn < limit)
        {
            int length;
            try
            {
                length = LogFormat.CheckFrame(mapping, ring, layout, lsn, limit, ref scratch, out problem);
            }
            catch (PmemMediaErrorException e)
            {
                length = -1;
                problem = LogFormat.Invariant(
                    $"a media error, bad range [0x{e.BadOffset:x}, 0x{e.BadOffset + e.BadLength:x}) of the pool (source offset 0x{e.BadSourceOffset:x}): {e.Message}");
                media = true;
                // Where a log opened with LogMediaErrorPolicy.Skip goes on (the same search recovery and readers run).
                long probeEnd = Math.Max(tailWord, Math.Min(tailWord + layout.Window, limit));
                after = LogFormat.FindIntactAfter(mapping, ring, layout, lsn, probeEnd, limit, e, ref scratch, out long next)
                    ? LogFormat.Invariant($"; the records resume at LSN {next} (a log opened with LogMediaErrorPolicy.Skip reads on from there)")
                    : LogFormat.Invariant($"; no record after it validates before LSN {next}");
            }
            if (length < 0)
            {
                if (lsn < tailWord || media)
                {
                    string reader = media ? "LogMediaErrorException, or skips it under LogMediaErrorPolicy.Skip" : "LogCorruptException";
                    string message = LogFormat.Invariant(
                        $"The record at LSN {lsn} is damaged: {problem}; the {records} record(s) before it read back, the {Math.Max(0, tailWord - lsn)} bytes from it to the tail word do not (a reader stops there with {reader}){after}.");
                    sink.Problems.Add(new LogProblem(null, lsn, message));
                    return new LogInspection(offset, sink.Problems, layout.Capacity, head, tailWord, lsn, records, lsn, problem, null) { FormatVersion = version };
                }
                return new LogInspection(offset, sink.Problems, layout.Capacity, head, tailWord, lsn, records, null, null,
                    LogFormat.Invariant($"the frame at LSN {lsn}: {problem}")) { FormatVersion = version };
            }
            records++;
            lsn += LogFormat.FrameLength(length);
        }
        return new LogInspection(offset, sink.Problems, layout.Capacity, head, tailWord, lsn, records, null, null, "the ring is full") { FormatVersion = version };
    }

    private sealed class CollectingSink : ILogProblemSink
    {
        public List<LogProblem> Problems { get; } = [];

        public void Report(LogHeaderField field, PoolProblemSeverity severity, string message) => Problems.Add(new LogProblem(field, null, message, severity));
    }
}
