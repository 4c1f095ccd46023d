using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using DirectPmem.Interop;
using DirectPmem.Mapping;
using DirectPmem.Storage;

namespace DirectPmem.IntegrationTests;

/// <summary>
/// Issue 19's proofs for logs, in the qemu guest: a log with a poisoned record (a real
/// <c>BUS_MCEERR_AR</c> at the next load) recovers to the record before it and reports the gap in
/// LSNs, a second open does the same (no crash loop), and with <see cref="LogMediaErrorPolicy.Skip"/>
/// the records after it are returned; a reader over a poisoned record before the tail word stops
/// with <see cref="LogMediaErrorException"/> or skips it, as the log was opened.
/// </summary>
/// <remarks>
/// Kernel facility and why: those of <see cref="MediaErrorPoolTests"/>'s header case (MADV_HWPOISON on a
/// page of a memfd pool, here the page that holds record 40), each case in a child process.
/// </remarks>
[Collection(DeviceTestGroup.Name)]
public sealed partial class MediaErrorLogTests
{
    private const int MADV_HWPOISON = 100;
    private const long Length = 1 << 20;
    private const long LogLength = 256 << 10;
    private const string Layout = "media-error-log";
    private const int PayloadLength = 500;
    private const int RecordCount = 100;
    private const int PoisonedRecord = 40;
    private const long LogHeaderLength = 4096; // the log's on-media header, before its ring (internal to the library)

    private readonly ITestOutputHelper _output;

    public MediaErrorLogTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void A_log_whose_unpersisted_record_is_poisoned_recovers_to_the_record_before_it_twice_and_skips_it_when_asked()
    {
        ChildProcess.Result result = RunChild(nameof(Child_poisons_a_record_after_the_tail_word_and_opens_the_log));
        (long lost, long after, int before, int following) = Setup(result);
        string stop = $"tail {lost}, loss [{lost}, {after}) resumed, read-only, {before} records";
        Assert.Contains($"stop open 1: {stop}", result.Report);
        Assert.Contains($"stop open 2: {stop}", result.Report);
        Assert.Contains($"skip open: tail {RecordCount * (long)PmemLog.FrameLength(PayloadLength)}, loss [{lost}, {after}) resumed, read-only, {before + following} records, reader losses [{lost}, {after})", result.Report);
    }

    [Fact]
    public void A_reader_over_a_poisoned_record_before_the_tail_word_stops_typed_or_skips_it()
    {
        ChildProcess.Result result = RunChild(nameof(Child_poisons_a_record_before_the_tail_word_and_reads_the_log));
        (long lost, long after, int before, int following) = Setup(result);
        Assert.Contains($"stop read: LogMediaErrorException at {lost}, loss [{lost}, {after}), {before} records before it", result.Report);
        Assert.Contains($"skip read: {before + following} records, losses [{lost}, {after})", result.Report);
    }

    [Fact(Explicit = true)]
    public void Child_poisons_a_record_after_the_tail_word_and_opens_the_log() => PoisonAndReport(disposeLog: false);

    [Fact(Explicit = true)]
    public void Child_poisons_a_record_before_the_tail_word_and_reads_the_log() => PoisonAndReport(disposeLog: true);

    private ChildProcess.Result RunChild(string child)
    {
        // MADV_HWPOISON retires a physical page for good: only in the qemu guest.
        if (IntegrationEnvironment.Phase == 0)
        {
            Assert.Skip("poisons a page with MADV_HWPOISON: only in the qemu guest of tests/devdax-vm/run.sh (DIRECTPMEM_VM_PHASE is not set)");
        }
        ChildProcess.Result result = ChildProcess.Run(typeof(MediaErrorLogTests), child);
        MediaErrorTests.AssertChildDone(result, _output);
        return result;
    }

    // The child's "setup:" line: where the loss starts and ends, and how many records lie on each side.
    private static (long Lost, long After, int Before, int Following) Setup(ChildProcess.Result result)
    {
        string line = Assert.Single(result.Report, l => l.StartsWith("setup: ", StringComparison.Ordinal));
        Match m = SetupLine().Match(line);
        Assert.True(m.Success, line);
        return (long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture),
            int.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture), int.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture));
    }

    [GeneratedRegex(@"^setup: lost (\d+), after (\d+), (\d+) before, (\d+) following$")]
    private static partial Regex SetupLine();

    private static unsafe void PoisonAndReport(bool disposeLog)
    {
        ChildProcess.RequireChild();
        using PmemFile file = PmemFile.CreateMemory("directpmem-it-log-hwpoison", Length);
        using DaxMapping map = file.Map();
        long logOffset;
        int frame = PmemLog.FrameLength(PayloadLength);
        using (PmemPool pool = TestPools.Create(map, Layout))
        {
            PmemLog log = PmemLog.Create(pool, pool.DataOffset, LogLength);
            pool.SetRoot(log.Offset);
            logOffset = log.Offset;
            for (int seq = 0; seq < RecordCount; seq++)
            {
                log.Append(Payload(seq));
            }
            // Not disposed: the records lie after the tail word, as a crash leaves them (recovery scans them).
            // Disposed: the tail word covers them (recovery scans nothing, a reader meets the poison).
            if (disposeLog)
            {
                log.Dispose();
            }
        }
        long ring = logOffset + LogHeaderLength;
        long page = (ring + PoisonedRecord * (long)frame) & ~4095L;
        // Every record whose frame touches the page is lost; the first that starts after it reads.
        int firstLost = Enumerable.Range(0, RecordCount).First(i => ring + (long)i * frame + frame > page);
        int firstAfter = Enumerable.Range(0, RecordCount).First(i => ring + (long)i * frame >= page + 4096);
        if (Libc.MAdvise((nint)map.DangerousGetPointer() + (nint)page, 4096, MADV_HWPOISON) != 0)
        {
            ChildProcess.Report($"skip: madvise(MADV_HWPOISON) on the memfd failed with {Errno.Name(Marshal.GetLastPInvokeError())}");
            return;
        }
        try
        {
            map.ReadSafe(page, new byte[64]);
            ChildProcess.Report("skip: the memfd page read back without a fault after MADV_HWPOISON (this kernel does not take it out of service)");
            return;
        }
        catch (PmemMediaErrorException e) when (e.Kind == MediaErrorKind.Poison)
        {
        }
        long lost = (long)firstLost * frame;
        long after = (long)firstAfter * frame;
        ChildProcess.Report($"setup: lost {lost}, after {after}, {firstLost} before, {RecordCount - firstAfter} following");
        using PmemPool reopened = PmemPool.Open(map, Layout);
        if (!disposeLog)
        {
            for (int open = 1; open <= 2; open++)
            {
                using PmemLog log = PmemLog.Open(reopened, logOffset);
                ChildProcess.Report($"stop open {open}: {Describe(log)}, {ReadChecked(log, out _)} records");
            }
            using (PmemLog log = PmemLog.Open(reopened, logOffset, new LogOpenOptions { MediaErrorPolicy = LogMediaErrorPolicy.Skip }))
            {
                int records = ReadChecked(log, out string losses);
                ChildProcess.Report($"skip open: {Describe(log)}, {records} records, reader losses {losses}");
            }
        }
        else
        {
            using (PmemLog log = PmemLog.Open(reopened, logOffset))
            {
                int before = 0;
                try
                {
                    foreach (LogRecord record in log.ReadAll())
                    {
                        Check(record);
                        before++;
                    }
                    ChildProcess.Report("stop read: no error");
                }
                catch (LogMediaErrorException e)
                {
                    ChildProcess.Report($"stop read: LogMediaErrorException at {e.Lsn}, loss [{e.Loss?.StartLsn}, {e.Loss?.EndLsn}), {before} records before it");
                }
            }
            using (PmemLog log = PmemLog.Open(reopened, logOffset, new LogOpenOptions { MediaErrorPolicy = LogMediaErrorPolicy.Skip }))
            {
                int records = ReadChecked(log, out string losses);
                ChildProcess.Report($"skip read: {records} records, losses {losses}");
            }
        }
        ChildProcess.Report("done");
    }

    private static string Describe(PmemLog log)
    {
        LogMediaLoss? loss = log.RecoveryLoss;
        string what = loss is null ? "no loss" : $"loss [{loss.StartLsn}, {loss.EndLsn}) {(loss.Resumed ? "resumed" : "not resumed")}";
        return $"tail {log.Tail}, {what}, {(log.IsReadOnly ? "read-only" : "writable")}";
    }

    // Reads every record (a skipping reader goes on after the gap), checking each payload; the losses as "[s, e)".
    private static int ReadChecked(PmemLog log, out string losses)
    {
        int records = 0;
        LogReader reader = log.ReadAll();
        foreach (LogRecord record in reader)
        {
            Check(record);
            records++;
        }
        losses = string.Join(" ", reader.Losses.Select(l => $"[{l.StartLsn}, {l.EndLsn})"));
        return records;
    }

    private static void Check(LogRecord record)
    {
        int seq = (int)(record.Lsn / PmemLog.FrameLength(PayloadLength));
        if (!record.Payload.SequenceEqual(Payload(seq)))
        {
            throw new InvalidOperationException($"the record at LSN {record.Lsn} differs from what was appended");
        }
    }

    private static byte[] Payload(int seq)
    {
        byte[] data = new byte[PayloadLength];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (byte)(seq * 31 + i * 7 + 1);
        }
        return data;
    }
}
