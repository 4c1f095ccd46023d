namespace DirectPmem.Storage;

/// <summary>The log header field an open failed on.</summary>
public enum LogHeaderField
{
    /// <summary>Where the log is said to start in the pool (offset, alignment, bounds).</summary>
    Location,
    /// <summary>The 8-byte signature ("DPMLOG01"): no log at this offset.</summary>
    Magic,
    /// <summary>The format version (major, minor) or the header size recorded with it; an earlier preview's log is refused here.</summary>
    Version,
    /// <summary>The checksum of the static header fields.</summary>
    Checksum,
    /// <summary>The ring capacity recorded in the header.</summary>
    Capacity,
    /// <summary>The published head (first live LSN).</summary>
    Head,
    /// <summary>The tail word (persisted lazily: the records after it are found by scanning).</summary>
    Tail,
    /// <summary>The unpersisted-tail window recorded in the header.</summary>
    Window,
    /// <summary>The feature words (compat, incompat, ro-compat): an unknown incompatible feature refuses the log, an unknown read-only-compatible one opens it read-only.</summary>
    Features,
    /// <summary>The header could not be read: poison, a page past the end of a truncated file, or a page the kernel could not provide.</summary>
    MediaError,
}

/// <summary>A log header failed validation on open; <see cref="Field"/> names the field.</summary>
public sealed class LogFormatException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="field">The field that failed.</param>
    /// <param name="message">What was expected and what was found.</param>
    public LogFormatException(LogHeaderField field, string message) : base(message)
    {
        Field = field;
    }

    /// <summary>The header field that failed validation.</summary>
    public LogHeaderField Field { get; }
}

/// <summary>
/// A record between the published head and tail failed its frame check (length, LSN or
/// checksum): the media under the durable part of the log was damaged. The record is not returned.
/// </summary>
public sealed class LogCorruptException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="lsn">The position of the damaged frame.</param>
    /// <param name="message">Which check failed.</param>
    public LogCorruptException(long lsn, string message) : base(message)
    {
        Lsn = lsn;
    }

    /// <summary>The LSN (log position) of the damaged frame.</summary>
    public long Lsn { get; }
}

/// <summary>
/// An append did not fit in the free space of the log. Nothing was written and nothing already
/// appended is lost: truncate the head (<see cref="PmemLog.Truncate"/>) and retry.
/// </summary>
public sealed class LogFullException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="requiredBytes">The bytes the append needed, frames included.</param>
    /// <param name="freeBytes">The bytes free when it was refused.</param>
    /// <param name="capacity">The ring capacity of the log.</param>
    public LogFullException(long requiredBytes, long freeBytes, long capacity)
        : base($"The log is full: the append needs {requiredBytes} bytes (frames included), {freeBytes} of {capacity} are free; truncate the head and retry. Nothing was written.")
    {
        RequiredBytes = requiredBytes;
        FreeBytes = freeBytes;
    }

    /// <summary>The bytes the refused append needed, frames included.</summary>
    public long RequiredBytes { get; }

    /// <summary>The bytes that were free.</summary>
    public long FreeBytes { get; }
}

/// <summary>
/// <see cref="PmemLog.Create(PmemPool, long, long)"/> found a log already at the offset (an intact
/// header) and was not told to overwrite it. Open it with <see cref="PmemLog.Open(PmemPool, long)"/>, or pass
/// <c>overwrite: true</c> to replace it.
/// </summary>
public sealed class LogExistsException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="offset">Where the log is.</param>
    /// <param name="capacity">Its ring capacity.</param>
    /// <param name="head">Its head.</param>
    /// <param name="tail">The tail recovery would find.</param>
    /// <param name="records">The records it holds.</param>
    public LogExistsException(long offset, long capacity, long head, long tail, long records)
        : base(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"PmemLog.Create: a log is already at offset {offset} (capacity {capacity}, records [{head}, {tail}), {records} record(s)); open it with PmemLog.Open, or pass overwrite: true to replace it."))
    {
        Offset = offset;
        Records = records;
    }

    /// <summary>Where the existing log starts.</summary>
    public long Offset { get; }

    /// <summary>The records the existing log holds.</summary>
    public long Records { get; }
}

/// <summary>
/// A read of a log met media it could not read (a poisoned line, or a page past the end of a
/// truncated file), read through the poison-safe path: the process goes on, no damaged byte was
/// returned and nothing was written. <see cref="Lsn"/> names the record. Thrown by
/// <see cref="PmemLog.Read"/>, <see cref="PmemLog.GetRecordLength"/> and a <see cref="LogReader"/>
/// under <see cref="LogMediaErrorPolicy.Stop"/>; recovery (<see cref="PmemLog.Open(PmemPool, long, LogOpenOptions?)"/>)
/// reports the same loss in <see cref="PmemLog.RecoveryLoss"/> instead and opens the log read-only.
/// <see cref="PmemLog.Inspect"/> reports the same LSN.
/// </summary>
public sealed class LogMediaErrorException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="offset">Where the log starts.</param>
    /// <param name="lsn">The LSN of the record recovery could not read.</param>
    /// <param name="head">The log's head.</param>
    /// <param name="mediaError">The poison-safe read's error.</param>
    public LogMediaErrorException(long offset, long lsn, long head, PmemMediaErrorException mediaError)
        : this(offset, lsn, mediaError, string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"PmemLog.Open: recovery of the log at offset {offset} cannot read the record at LSN {lsn} ({mediaError.Message}). The records in [{head}, {lsn}) are intact; the loss starts at LSN {lsn}. Nothing was written."))
    {
    }

    // A read of one record (PmemLog.Read, GetRecordLength) met unreadable media.
    internal LogMediaErrorException(long offset, long lsn, string call, PmemMediaErrorException mediaError)
        : this(offset, lsn, mediaError, string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{call}: the record at LSN {lsn} of the log at offset {offset} cannot be read ({mediaError.Message}). No damaged byte was returned; the other records are unaffected."))
    {
    }

    // A reader under LogMediaErrorPolicy.Stop met unreadable media: the gap it measured.
    internal LogMediaErrorException(LogMediaLoss loss, string call)
        : this(loss.LogOffset, loss.StartLsn, loss.MediaError, string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{call}: the record at LSN {loss.StartLsn} of the log at offset {loss.LogOffset} cannot be read ({loss.MediaError.Message}). Every record before it was returned and no damaged byte; {loss} Open the log with LogMediaErrorPolicy.Skip to read on after the gap."))
    {
        Loss = loss;
    }

    private LogMediaErrorException(long offset, long lsn, PmemMediaErrorException mediaError, string message)
        : base(message, mediaError)
    {
        Offset = offset;
        Lsn = lsn;
        MediaError = mediaError;
    }

    /// <summary>Where the log starts.</summary>
    public long Offset { get; }

    /// <summary>The LSN of the first record recovery could not read: the loss starts here.</summary>
    public long Lsn { get; }

    /// <summary>The poison-safe read's error (its kind, and the bad range).</summary>
    public PmemMediaErrorException MediaError { get; }

    /// <summary>The gap a reader measured (from this record to the next one that validates), or null where none was measured (<see cref="PmemLog.Read"/>, <see cref="PmemLog.GetRecordLength"/>).</summary>
    public LogMediaLoss? Loss { get; }
}
