using System.Buffers;

namespace DirectPmem.Storage;

/// <summary>One record read from a <see cref="PmemLog"/>: its LSN and payload.</summary>
/// <remarks>
/// The payload points into the reader's buffer (<see cref="LogReadMode.Copy"/>, the default) or into
/// the pool's mapping (<see cref="LogReadMode.ZeroCopy"/>, except a record that wraps around the end of
/// the ring): use it before the next <see cref="LogReader.MoveNext"/>, and never after the records are
/// truncated.
/// </remarks>
public readonly ref struct LogRecord
{
    internal LogRecord(long lsn, ReadOnlySpan<byte> payload)
    {
        Lsn = lsn;
        Payload = payload;
    }

    /// <summary>The record's LSN (its position in the log).</summary>
    public long Lsn { get; }

    /// <summary>The record's payload, checked against its checksum.</summary>
    public ReadOnlySpan<byte> Payload { get; }

    /// <summary>The LSN of the next record (or the tail).</summary>
    public long NextLsn => Lsn + PmemLog.FrameLength(Payload.Length);
}

/// <summary>
/// A struct enumerator over a log's records from a start LSN to the durable tail at its creation.
/// No allocation per record: payloads are copied into one pooled buffer, returned by
/// <see cref="Dispose"/>, which <c>foreach</c> calls.
/// </summary>
/// <remarks>
/// <para>In <see cref="LogReadMode.Copy"/> (the default) each payload is copied through the
/// poison-safe copy and checked in the copy: a record on unreadable media (poison, or a page past the
/// end of a truncated file) never costs the process. Under <see cref="LogMediaErrorPolicy.Stop"/> (the
/// log's <see cref="PmemLog.MediaErrorPolicy"/>) <see cref="MoveNext"/> throws
/// <see cref="LogMediaErrorException"/> at it, after every record before it; under
/// <see cref="LogMediaErrorPolicy.Skip"/> it goes on at the next record that validates and adds the gap
/// to <see cref="Losses"/> (a gap also shows as a jump of <see cref="LogRecord.Lsn"/> past the previous
/// record's <see cref="LogRecord.NextLsn"/>). Read <see cref="Losses"/> on the reader that ran: a
/// <c>foreach</c> shares them with the variable it enumerates.</para>
/// <para>In <see cref="LogReadMode.ZeroCopy"/> a payload points into the pool's mapping: valid until the
/// pool is disposed, like any span of a <c>DaxMapping</c> (reading it after that is a bug the library
/// cannot catch), and a load of a poisoned line in it raises SIGBUS, which ends the process.</para>
/// </remarks>
public ref struct LogReader
{
    private readonly PmemLog _log;
    private readonly long _end;
    private readonly LogReadMode _mode;
    private readonly List<LogMediaLoss>? _losses;
    private long _next;
    private bool _firstIsBoundary;
    private byte[]? _scratch;
    private long _lsn;
    private ReadOnlySpan<byte> _payload;

    internal LogReader(PmemLog log, long start, long end, bool firstIsBoundary, LogReadMode mode)
    {
        _log = log;
        _next = start;
        _end = end;
        _firstIsBoundary = firstIsBoundary;
        _mode = mode;
        // One list per skipping reader, made here so that the copy foreach enumerates shares it (no array until a loss).
        _losses = log.MediaErrorPolicy == LogMediaErrorPolicy.Skip ? new List<LogMediaLoss>(0) : null;
    }

    /// <summary>The current record.</summary>
    public readonly LogRecord Current => new(_lsn, _payload);

    /// <summary>The LSN where reading stops: the durable tail when the reader was made.</summary>
    public readonly long End => _end;

    /// <summary>How payloads are handed out.</summary>
    public readonly LogReadMode Mode => _mode;

    /// <summary>The ranges skipped so far because they lay on unreadable media (<see cref="LogMediaErrorPolicy.Skip"/>); empty under <see cref="LogMediaErrorPolicy.Stop"/>, which throws instead.</summary>
    public readonly IReadOnlyList<LogMediaLoss> Losses => (IReadOnlyList<LogMediaLoss>?)_losses ?? [];

    /// <summary>Returns this reader, for <c>foreach</c>.</summary>
    /// <returns>The reader.</returns>
    public readonly LogReader GetEnumerator() => this;

    /// <summary>Moves to the next record, checking its frame and checksum.</summary>
    /// <returns>Whether there was a record before the end.</returns>
    /// <exception cref="LogCorruptException">The next frame is damaged; it is not returned.</exception>
    /// <exception cref="LogMediaErrorException">The next record lies on unreadable media and the log's policy is <see cref="LogMediaErrorPolicy.Stop"/>; no byte of it is returned, and the process goes on.</exception>
    /// <exception cref="ArgumentException">The start LSN given to <see cref="PmemLog.ReadFrom(long)"/> is not the LSN of a record.</exception>
    /// <exception cref="InvalidOperationException">The log was truncated past the reader.</exception>
    /// <exception cref="ObjectDisposedException">The pool has been disposed (a MoveNext racing the pool's Dispose finishes first or throws this).</exception>
    public bool MoveNext()
    {
        while (_next < _end)
        {
            _log.CheckReaderPosition(_next);
            PmemPool pool = _log.Pool;
            LogRing ring = _log.Ring;
            pool.EnterRead();
            try
            {
                int length;
                ReadOnlySpan<byte> payload;
                try
                {
                    length = ring.ReadFrameHeader(_next, _end, _firstIsBoundary, out uint checksum);
                    payload = _mode == LogReadMode.Copy
                        ? ring.CopyPayload(_next, length, ref _scratch)
                        : ring.GetPayload(_next, length, ref _scratch);
                    ring.VerifyChecksum(_next, payload, checksum);
                }
                catch (PmemMediaErrorException e)
                {
                    LogMediaLoss loss = MeasureLoss(ring, e);
                    if (_losses is null)
                    {
                        throw new LogMediaErrorException(loss, "LogReader.MoveNext");
                    }
                    _losses.Add(loss);
                    _next = loss.EndLsn;
                    _firstIsBoundary = true;
                    continue;
                }
                _firstIsBoundary = true;
                _lsn = _next;
                _payload = payload;
                _next += PmemLog.FrameLength(length);
                return true;
            }
            finally
            {
                pool.ExitRead();
            }
        }
        return false;
    }

    // The gap: from the record that could not be read to the next one that validates before the end (the error path only).
    private readonly LogMediaLoss MeasureLoss(LogRing ring, PmemMediaErrorException error)
    {
        byte[] probe = new byte[256];
        bool resumed = LogFormat.FindIntactAfter(ring.Mapping, ring.RingOffset, _log.Layout, _next, _end, _end, error, ref probe, out long next);
        var loss = new LogMediaLoss(_log.Offset, _next, next, resumed, error);
        Diagnostics.StorageCounts.OnMediaLoss(loss);
        return loss;
    }

    /// <summary>Returns the scratch buffer, if one was rented.</summary>
    public void Dispose()
    {
        if (_scratch is not null)
        {
            ArrayPool<byte>.Shared.Return(_scratch);
            _scratch = null;
        }
    }
}
