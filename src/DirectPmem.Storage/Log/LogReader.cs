using System.Buffers;

namespace DirectPmem.Storage;

/// <summary>One record read from a <see cref="PmemLog"/>: its LSN and payload.</summary>
/// <remarks>
/// The payload points into the pool's mapping (or, for a record that wraps around the end of the
/// ring, into the reader's scratch buffer): use it before the next <see cref="LogReader.MoveNext"/>,
/// and never after the records are truncated.
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
/// No allocation per record (a record that wraps around the ring is copied into one pooled buffer,
/// returned by <see cref="Dispose"/>, which <c>foreach</c> calls). <see cref="Current"/>'s payload
/// points into the pool's mapping: it is valid until the pool is disposed, like any span of a
/// <c>DaxMapping</c>, and reading it after that is a bug the library cannot catch.
/// </summary>
public ref struct LogReader
{
    private readonly PmemLog _log;
    private readonly long _end;
    private long _next;
    private bool _firstIsBoundary;
    private byte[]? _scratch;
    private long _lsn;
    private ReadOnlySpan<byte> _payload;

    internal LogReader(PmemLog log, long start, long end, bool firstIsBoundary)
    {
        _log = log;
        _next = start;
        _end = end;
        _firstIsBoundary = firstIsBoundary;
    }

    /// <summary>The current record.</summary>
    public readonly LogRecord Current => new(_lsn, _payload);

    /// <summary>The LSN where reading stops: the durable tail when the reader was made.</summary>
    public readonly long End => _end;

    /// <summary>Returns this reader, for <c>foreach</c>.</summary>
    /// <returns>The reader.</returns>
    public readonly LogReader GetEnumerator() => this;

    /// <summary>Moves to the next record, checking its frame and checksum.</summary>
    /// <returns>Whether there was a record before the end.</returns>
    /// <exception cref="LogCorruptException">The next frame is damaged; it is not returned.</exception>
    /// <exception cref="ArgumentException">The start LSN given to <see cref="PmemLog.ReadFrom"/> is not the LSN of a record.</exception>
    /// <exception cref="InvalidOperationException">The log was truncated past the reader.</exception>
    /// <exception cref="ObjectDisposedException">The pool has been disposed (a MoveNext racing the pool's Dispose finishes first or throws this).</exception>
    public bool MoveNext()
    {
        if (_next >= _end)
        {
            return false;
        }
        _log.CheckReaderPosition(_next);
        PmemPool pool = _log.Pool;
        pool.EnterRead();
        ReadOnlySpan<byte> payload;
        int length;
        try
        {
            length = _log.Ring.ReadFrameHeader(_next, _end, _firstIsBoundary, out uint checksum);
            _firstIsBoundary = true;
            payload = _log.Ring.GetPayload(_next, length, ref _scratch);
            _log.Ring.VerifyChecksum(_next, payload, checksum);
        }
        finally
        {
            pool.ExitRead();
        }
        _lsn = _next;
        _payload = payload;
        _next += PmemLog.FrameLength(length);
        return true;
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
