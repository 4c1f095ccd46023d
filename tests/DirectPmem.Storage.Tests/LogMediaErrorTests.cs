using DirectPmem.Mapping;
using DirectPmem.Tests.Support;
using DirectPmem.TestSupport;
using Xunit;

namespace DirectPmem.Storage.Tests;

/// <summary>
/// Issue 19 for the log, host tier: a real SIGBUS under log recovery (the pool file truncated
/// under its mapping, in the ring past the tail word where recovery scans) is a typed error that
/// names the LSN where the loss starts; the process lives, nothing is written, and the inspection
/// reports the same LSN.
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
    public void RecoveryThatMeetsATruncatedRingFailsTypedAtTheFirstUnreadableRecordAndTheProcessLives()
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
        for (int attempt = 0; attempt < 2; attempt++)
        {
            LogMediaErrorException e = Assert.Throws<LogMediaErrorException>(() => PmemLog.Open(reopened, logOffset));
            Assert.Equal(firstLost, e.Lsn);
            Assert.Equal(MediaErrorKind.BeyondEndOfFile, e.MediaError.Kind);
            Assert.Contains($"the loss starts at LSN {firstLost}", e.Message, StringComparison.Ordinal);
        }
        LogInspection inspection = PmemLog.Inspect(mapping, logOffset, reopened.DataOffset);
        Assert.Equal(firstLost, inspection.FirstDamagedLsn);
        Assert.Equal(lsns.IndexOf(firstLost), inspection.Records);
        Assert.Contains("media error", inspection.FirstDamagedProblem, StringComparison.Ordinal);
        Assert.False(mapping.IsDisposed);
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
        if (!DaxMapping.IsReadSafeSupported)
        {
            Assert.Skip("DaxMapping.ReadSafe is unavailable here (it needs x86-64): without it a read of a truncated page raises SIGBUS");
        }
        (string? root, string reason) = PageCacheProbe.Found;
        if (root is null)
        {
            Assert.Skip(reason);
        }
        string dir = Path.Combine(root, "directpmem-logmedia-" + Guid.NewGuid().ToString("n"));
        Directory.CreateDirectory(dir);
        _dirs.Add(dir);
        return Path.Combine(dir, "pool");
    }
}
