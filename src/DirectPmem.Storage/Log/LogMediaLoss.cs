using System.Globalization;

namespace DirectPmem.Storage;

/// <summary>What a log does with a record on unreadable media (poison, a page past the end of a truncated file, or a page the kernel could not provide).</summary>
public enum LogMediaErrorPolicy
{
    /// <summary>
    /// Stop at the last intact record before it. Recovery ends the log there (<see cref="PmemLog.Tail"/>
    /// is the damaged record's LSN); a reader throws <see cref="LogMediaErrorException"/> at it, after
    /// handing out every record before it.
    /// </summary>
    Stop = 0,

    /// <summary>
    /// Skip it and go on at the next record that validates (records carry their own LSN and a checksum
    /// seeded with the log's nonce, so a record found after a hole is one of this log's, at its place).
    /// Recovery goes on scanning after the hole; a reader hands out the records after it. The gap is
    /// reported either way (<see cref="PmemLog.RecoveryLoss"/>, <see cref="LogReader.Losses"/>).
    /// </summary>
    Skip = 1,
}

/// <summary>How a <see cref="LogReader"/> hands out payloads.</summary>
public enum LogReadMode
{
    /// <summary>
    /// Each payload is copied through the poison-safe copy (<see cref="Mapping.DaxMapping.ReadSafe"/>)
    /// into the reader's buffer and checked there: a record on unreadable media is a typed error or a
    /// skip (<see cref="LogMediaErrorPolicy"/>), never a SIGBUS. One copy per record, no allocation
    /// per record.
    /// </summary>
    Copy = 0,

    /// <summary>
    /// Each payload is a span over the pool's mapping (no copy; a record that wraps around the ring is
    /// still copied). The frame header is read through the poison-safe copy, but the checksum pass and
    /// every later use of the payload are plain loads: a record on poisoned media ends the process with
    /// SIGBUS, as any <see cref="Mapping.DaxMapping.GetReadOnlySpan"/> read does. Choose it for replay of
    /// media known good (no bad ranges, <see cref="Mapping.DaxMapping.GetBadRanges"/>) when the copy costs too much.
    /// </summary>
    ZeroCopy = 1,
}

/// <summary>Options of <see cref="PmemLog.Open(PmemPool, long, LogOpenOptions?)"/>.</summary>
public sealed class LogOpenOptions
{
    /// <summary>
    /// What recovery and this log's readers do with a record on unreadable media; <see cref="LogMediaErrorPolicy.Stop"/>
    /// by default. Recovery that meets one opens the log read-only either way (see <see cref="PmemLog.RecoveryLoss"/>).
    /// </summary>
    public LogMediaErrorPolicy MediaErrorPolicy { get; init; }
}

/// <summary>
/// LSNs of a log lost to unreadable media: <c>[StartLsn, EndLsn)</c>, from the first record that could
/// not be read to the next record that reads back. No byte of it was returned.
/// </summary>
public sealed class LogMediaLoss
{
    internal LogMediaLoss(long logOffset, long startLsn, long endLsn, bool resumed, PmemMediaErrorException mediaError)
    {
        LogOffset = logOffset;
        StartLsn = startLsn;
        EndLsn = endLsn;
        Resumed = resumed;
        MediaError = mediaError;
    }

    /// <summary>Where the log starts in the pool.</summary>
    public long LogOffset { get; }

    /// <summary>The LSN of the first record that could not be read: the loss starts here.</summary>
    public long StartLsn { get; }

    /// <summary>
    /// The LSN of the next record that reads back and validates after the bad range (<see cref="Resumed"/>),
    /// or, when none did, where the search ended (the durable tail for a reader, the end of the unpersisted-tail
    /// window for recovery).
    /// </summary>
    public long EndLsn { get; }

    /// <summary>Whether a record that validates was found at <see cref="EndLsn"/> after the bad range.</summary>
    public bool Resumed { get; }

    /// <summary>The number of LSN bytes lost (frames, headers and padding included).</summary>
    public long LostBytes => EndLsn - StartLsn;

    /// <summary>The poison-safe read's error: its kind and the bad range in mapping and source offsets.</summary>
    public PmemMediaErrorException MediaError { get; }

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"LSNs [{StartLsn}, {EndLsn}) of the log at offset {LogOffset} are lost ({LostBytes} bytes; {(Resumed ? "the records resume at " + EndLsn.ToString(CultureInfo.InvariantCulture) : "no record after the bad range validates")}): " +
        $"{MediaError.Cause}, 0x{MediaError.BadLength:x} bytes bad at pool offset 0x{MediaError.BadOffset:x} (source offset 0x{MediaError.BadSourceOffset:x}).");
}
