using System.Buffers.Binary;
using DirectPmem.Mapping;
using Xunit;

namespace DirectPmem.Storage.Tests;

/// <summary>
/// Damaged headers and log regions: every open and read gives a valid result or a typed error
/// (PoolFormatException, LogFormatException, LogCorruptException), never another exception, and a
/// valid result never contains a record that was not appended.
/// </summary>
public sealed class FuzzTests(ITestOutputHelper output)
{
    private const string Layout = LogTests.Layout;
    private const long PoolLength = 64 * 1024;

    private static byte[] MakePoolImage(out List<(long Lsn, byte[] Payload)> records) => MakePoolImage(out records, out _);

    private static byte[] MakePoolImage(out List<(long Lsn, byte[] Payload)> records, out List<(long Lsn, byte[] Payload)> everAppended)
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(PoolLength);
        var (pool, log) = LogTests.NewLog(mapping, 16 * 1024); // 12 KiB ring
        records = [];
        int seq = 0;
        // Fill, truncate and refill so that the ring holds wrapped frames and stale frames from an earlier lap.
        for (int round = 0; round < 5; round++)
        {
            while (true)
            {
                byte[] payload = LogTests.Payload(seq, 20 + seq * 13 % 300);
                if (log.FreeBytes < PmemLog.FrameLength(payload.Length))
                {
                    break;
                }
                records.Add((log.Append(payload), payload));
                seq++;
            }
            log.Truncate(records[records.Count * 2 / 3].Lsn);
        }
        long head = log.Head;
        everAppended = [.. records];
        records.RemoveAll(r => r.Lsn < head);
        pool.Dispose();
        return mapping.GetReadOnlySpan(0, (int)PoolLength).ToArray();
    }

    [Fact]
    public void EveryByteOfEitherHeaderDamagedAloneIsRepaired()
    {
        byte[] image = MakePoolImage(out _);
        using DaxMapping mapping = DaxMapping.CreateAnonymous(PoolLength);
        int opened = 0;
        foreach (long copy in new long[] { 0, 4096 })
        {
            for (int i = 0; i < 4096; i++)
            {
                foreach (byte flip in new byte[] { 0x01, 0x80, 0xFF })
                {
                    image.CopyTo(mapping.GetSpan(0, (int)PoolLength));
                    mapping.GetSpan(copy + i, 1)[0] ^= flip;
                    using PmemPool pool = PmemPool.Open(mapping, Layout);
                    PoolHeaderRepair expected = copy == 0 ? PoolHeaderRepair.PrimaryRestoredFromBackup : PoolHeaderRepair.BackupRestoredFromPrimary;
                    Assert.True(pool.HeaderRepair == expected, $"byte {i} of copy {copy} ^ 0x{flip:x2}: {pool.HeaderRepair}");
                    Assert.Equal(Layout, pool.Layout);
                    opened++;
                }
            }
        }
        Knobs.Record($"fuzz header every-byte: {opened} opens");
        output.WriteLine($"{opened} single-byte header damages, all repaired");
    }

    [Fact]
    public void RandomDamageToBothHeadersGivesAPoolOrAPoolFormatException()
    {
        byte[] image = MakePoolImage(out _);
        using DaxMapping mapping = DaxMapping.CreateAnonymous(PoolLength);
        var random = new Random(12345);
        var outcomes = new Dictionary<string, int>();
        int cases = Knobs.HeaderFuzzCases;
        for (int c = 0; c < cases; c++)
        {
            image.CopyTo(mapping.GetSpan(0, (int)PoolLength));
            int damages = random.Next(1, 6);
            for (int d = 0; d < damages; d++)
            {
                // Mostly the interesting first 256 bytes and the checksum of either copy.
                long copy = random.Next(2) * 4096L;
                int at = random.Next(4) == 0 ? random.Next(4096) : random.Next(4) == 0 ? 4088 + random.Next(8) : random.Next(256);
                mapping.GetSpan(copy + at, 1)[0] = (byte)random.Next(256);
            }
            string outcome;
            try
            {
                using PmemPool pool = PmemPool.Open(mapping, Layout);
                Assert.Equal(Layout, pool.Layout);
                Assert.InRange(pool.DataOffset, 8192, PoolLength);
                outcome = "opened " + pool.HeaderRepair;
            }
            catch (PoolFormatException e)
            {
                outcome = "refused " + e.Field;
            }
            outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
        }
        string summary = string.Join(", ", outcomes.OrderBy(o => o.Key).Select(o => $"{o.Key}: {o.Value}"));
        Knobs.Record($"fuzz header random: {cases} cases ({summary})");
        output.WriteLine(summary);
        Assert.Contains(outcomes.Keys, k => k.StartsWith("opened", StringComparison.Ordinal));
        Assert.Contains(outcomes.Keys, k => k.StartsWith("refused", StringComparison.Ordinal));
    }

    [Fact]
    public void RandomLogRegionDamageGivesOriginalRecordsOrATypedError()
    {
        byte[] image = MakePoolImage(out List<(long Lsn, byte[] Payload)> records, out List<(long Lsn, byte[] Payload)> everAppended);
        // A damaged head word may expose truncated records that are still intact: they were appended, so not phantoms.
        Dictionary<long, byte[]> original = everAppended.ToDictionary(r => r.Lsn, r => r.Payload);
        using DaxMapping mapping = DaxMapping.CreateAnonymous(PoolLength);
        const long logOffset = 16384; // the data offset of a pool with the default reserved area (its directory)
        const int logLength = 16 * 1024;
        var random = new Random(777);
        var outcomes = new Dictionary<string, int>();
        int cases = Knobs.LogFuzzCases;
        byte[] buffer = new byte[logLength];
        for (int c = 0; c < cases; c++)
        {
            image.CopyTo(mapping.GetSpan(0, (int)PoolLength));
            int damages = random.Next(1, 9);
            for (int d = 0; d < damages; d++)
            {
                int kind = random.Next(10);
                long at = kind switch
                {
                    0 => logOffset + random.Next(128),                // header block (format 4)
                    1 => logOffset + 128 + random.Next(8),            // tail word
                    2 => logOffset + 192 + random.Next(8),            // head word
                    _ => logOffset + 4096 + random.Next(logLength - 4096), // ring
                };
                if (kind is 1 or 2 && random.Next(2) == 0)
                {
                    // A plausible position rather than noise: a multiple of 64 (a frame start) near the real one.
                    long word = at & ~7L;
                    long value = BinaryPrimitives.ReadInt64LittleEndian(mapping.GetReadOnlySpan(word, 8)) + 64L * random.Next(-10, 10);
                    BinaryPrimitives.WriteInt64LittleEndian(mapping.GetSpan(word, 8), value);
                }
                else
                {
                    mapping.GetSpan(at, 1)[0] ^= (byte)random.Next(1, 256);
                }
            }
            string outcome;
            try
            {
                using PmemPool pool = PmemPool.Open(mapping, Layout);
                PmemLog log = PmemLog.Open(pool, logOffset);
                int read = 0;
                foreach (LogRecord record in log.ReadAll())
                {
                    if (!original.TryGetValue(record.Lsn, out byte[]? expected) || !record.Payload.SequenceEqual(expected))
                    {
                        Assert.Fail($"case {c}: a record at LSN {record.Lsn} that was never appended there was returned");
                    }
                    read++;
                }
                if (records.Count > 0 && random.Next(4) == 0)
                {
                    // Read by LSN and truncate too: valid or typed.
                    (long lsn, byte[] payload) = records[random.Next(records.Count)];
                    if (lsn >= log.Head && lsn < log.Tail)
                    {
                        int length = log.Read(lsn, buffer);
                        Assert.True(buffer.AsSpan(0, length).SequenceEqual(payload));
                    }
                }
                outcome = read == records.Count ? "all records" : "fewer records";
            }
            catch (LogFormatException e)
            {
                outcome = "log refused " + e.Field;
            }
            catch (LogCorruptException)
            {
                outcome = "corrupt record";
            }
            catch (PoolFormatException e)
            {
                outcome = "pool refused " + e.Field;
            }
            catch (ArgumentException e) when (e.ParamName == "lsn")
            {
                outcome = "not a record"; // the LSN we asked for no longer starts a frame (the head word was moved)
            }
            outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
        }
        string summary = string.Join(", ", outcomes.OrderBy(o => o.Key).Select(o => $"{o.Key}: {o.Value}"));
        Knobs.Record($"fuzz log: {cases} cases ({summary})");
        output.WriteLine(summary);
        Assert.True(outcomes.ContainsKey("corrupt record"));
        Assert.True(outcomes.ContainsKey("all records"));
    }
}
