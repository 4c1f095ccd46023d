using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text.Json;
using DirectPmem.Storage;
using DirectPmem.Storage.Transactions;
using DirectPmem.Tool.Tests.Support;
using Xunit;

namespace DirectPmem.Tool.Tests;

/// <summary><c>dpmem check</c> and <c>dpmem info</c> on real pools, corrupted on purpose.</summary>
public sealed class PoolCheckTests : IDisposable
{
    private const long PoolSize = 1 << 20;
    internal const long BackupHeaderOffset = 4096;
    // The log's on-media layout (not public API): a 4 KiB header before the ring (format 5: the tail word at 128 and the
    // head word at 192 of it), a 16-byte frame header before each payload.
    private const long LogHeaderLength = 4096;
    private const long LogTailWord = 128;
    private const long LogHeadWord = 192;
    private const long FrameHeaderSize = 16;
    private readonly string _dir = Directory.CreateTempSubdirectory("dpmem-pool-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ACleanPoolWithALogIsCleanAndItsRecordsAreWalked()
    {
        (string path, long[] lsns) = CreatePoolWithLog(10);
        (int code, string output, string error) = Dpmem.Run("check", path, "--json");
        Assert.True(code == 0, output + error);
        using JsonDocument doc = JsonDocument.Parse(output);
        JsonElement root = doc.RootElement;
        Assert.Equal("pool", root.GetProperty("kind").GetString());
        Assert.True(root.GetProperty("clean").GetBoolean());
        JsonElement pool = root.GetProperty("pool");
        Assert.Equal("intact", pool.GetProperty("primary").GetString());
        Assert.Equal("intact", pool.GetProperty("backup").GetString());
        Assert.Equal("log", pool.GetProperty("root").GetString());
        Assert.True(pool.GetProperty("clean").GetBoolean());
        JsonElement log = pool.GetProperty("log");
        Assert.Equal(10, log.GetProperty("records").GetInt64());
        Assert.Equal(lsns[^1] + PmemLog.FrameLength(100), log.GetProperty("tail").GetInt64());
        Assert.False(log.TryGetProperty("first_bad_lsn", out _));
    }

    [Fact]
    public void ATornPrimaryHeaderIsReportedAndRepairedFromTheBackup()
    {
        (string path, _) = CreatePoolWithLog(3);
        Flip(path, 300);
        (int code, string output, _) = Dpmem.Run("check", path, "--json");
        Assert.Equal(2, code);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            JsonElement problem = Assert.Single(doc.RootElement.GetProperty("problems").EnumerateArray());
            Assert.Equal("pool", problem.GetProperty("area").GetString());
            Assert.Contains("primary header (offset 0): checksum", problem.GetProperty("message").GetString(), StringComparison.Ordinal);
            Assert.Contains("restore the primary header from the intact backup", problem.GetProperty("repair").GetString(), StringComparison.Ordinal);
            Assert.Equal("backup", doc.RootElement.GetProperty("pool").GetProperty("header_used").GetString());
            // The log behind the root is still checked, from the backup's fields.
            Assert.Equal(3, doc.RootElement.GetProperty("pool").GetProperty("log").GetProperty("records").GetInt64());
        }

        // Declined: nothing changes.
        (code, _, _) = Dpmem.RunWithInput("n\n", "check", path, "--repair");
        Assert.Equal(2, code);

        (code, output, _) = Dpmem.Run("check", path, "--repair", "--yes", "--json");
        Assert.Equal(0, code);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            Assert.Contains(doc.RootElement.GetProperty("repaired").EnumerateArray(), r => r.GetString()!.Contains("primary header (offset 0) restored from the backup", StringComparison.Ordinal));
            Assert.Equal("intact", doc.RootElement.GetProperty("pool").GetProperty("primary").GetString());
        }
        Assert.Equal(0, Dpmem.Run("check", path).Code);
        using PmemPool reopened = PmemPool.OpenFile(path, "tool-test", new PoolOpenOptions { ReadOnly = true });
        Assert.Equal(PoolHeaderRepair.None, reopened.HeaderRepair);
    }

    [Fact]
    public void ACorruptBackupIsRepairedFromThePrimary()
    {
        (string path, _) = CreatePoolWithLog(1);
        Flip(path, PoolCheckTests.BackupHeaderOffset + 128);
        (int code, string output, _) = Dpmem.Run("check", path, "--json");
        Assert.Equal(2, code);
        Assert.Contains("backup header (offset 4096): checksum", Messages(output, "pool").Single(), StringComparison.Ordinal);
        (code, output, _) = Dpmem.Run("check", path, "--repair", "--yes");
        Assert.Equal(0, code);
        Assert.Contains("repaired pool: backup header (offset 4096) restored from the primary", output, StringComparison.Ordinal);
    }

    [Fact]
    public void BothHeadersBadReportsBothAndHasNoRepair()
    {
        (string path, _) = CreatePoolWithLog(1);
        Flip(path, 300);
        using (var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            file.Position = PoolCheckTests.BackupHeaderOffset;
            file.Write(new byte[8]); // the backup loses its signature
        }
        (int code, string output, _) = Dpmem.Run("check", path, "--repair", "--yes", "--json");
        Assert.Equal(2, code);
        string[] problems = Messages(output, "pool");
        Assert.Equal(2, problems.Length);
        Assert.Contains(problems, p => p.StartsWith("primary header (offset 0): checksum", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("backup header (offset 4096): no signature \"DPMPOOL\\0\"", StringComparison.Ordinal));
        using JsonDocument doc = JsonDocument.Parse(output);
        Assert.Empty(doc.RootElement.GetProperty("repaired").EnumerateArray());
        Assert.Contains(doc.RootElement.GetProperty("notes").EnumerateArray(), n => n.GetString()!.Contains("no repair", StringComparison.Ordinal));
    }

    [Fact]
    public void EveryHeaderFieldProblemIsReportedNotJustTheFirst()
    {
        (string path, _) = CreatePoolWithLog(1);
        // A well-formed header (signature and checksum fine) with an unknown incompat feature, a wrong
        // pointer size and a state of 7, in both copies: three field problems, no repair.
        RewriteHeaders(path, h =>
        {
            BinaryPrimitives.WriteUInt64LittleEndian(h[24..], 0x4);
            h[145] = 4;
            BinaryPrimitives.WriteUInt32LittleEndian(h[184..], 7);
        });
        (int code, string output, _) = Dpmem.Run("check", path, "--json");
        Assert.Equal(2, code);
        string[] problems = Messages(output, "pool");
        Assert.Contains(problems, p => p.Contains("incompat features: the pool header uses incompatible features this library does not know (0x4)", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("architecture: the pool was written with pointer size 4", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("state: the state word is 7", StringComparison.Ordinal));
        // The library agrees that it cannot open it.
        Assert.Throws<PoolFormatException>(() => PmemPool.OpenFile(path, "tool-test", new PoolOpenOptions { ReadOnly = true }).Dispose());
    }

    [Fact]
    public void ABadLogFrameIsReportedWithItsLsnAndWhatIsWrong()
    {
        (string path, long[] lsns) = CreatePoolWithLog(10);
        long logOffset = LogOffset(path);
        // Record 6's payload loses a bit: its checksum fails.
        Flip(path, logOffset + LogHeaderLength + lsns[6] + FrameHeaderSize + 5);
        (int code, string output, _) = Dpmem.Run("check", path, "--json");
        Assert.Equal(2, code);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            JsonElement log = doc.RootElement.GetProperty("pool").GetProperty("log");
            Assert.Equal(lsns[6], log.GetProperty("first_bad_lsn").GetInt64());
            Assert.Equal(6, log.GetProperty("records").GetInt64());
            Assert.Contains("fails its checksum", log.GetProperty("first_bad_problem").GetString(), StringComparison.Ordinal);
            Assert.Contains($"frame at LSN {lsns[6]}", Messages(output, "log").Single(), StringComparison.Ordinal);
        }
        // A frame that carries the wrong LSN, earlier in the log: that one is reported (the first bad frame).
        Flip(path, logOffset + LogHeaderLength + lsns[2] + 8);
        (code, output, _) = Dpmem.Run("check", path, "--repair", "--yes", "--json");
        Assert.Equal(2, code);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            JsonElement log = doc.RootElement.GetProperty("pool").GetProperty("log");
            Assert.Equal(lsns[2], log.GetProperty("first_bad_lsn").GetInt64());
            Assert.Contains("carries LSN", log.GetProperty("first_bad_problem").GetString(), StringComparison.Ordinal);
            Assert.Contains(doc.RootElement.GetProperty("notes").EnumerateArray(), n => n.GetString()!.Contains("no known repair", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void ALogOffsetCanBeNamedWhenTheRootDoesNotPointAtIt()
    {
        string path = Path.Combine(_dir, "pool");
        long offset;
        using (PmemPool pool = TestPools.CreateFile(path, PoolSize, "tool-test"))
        {
            offset = pool.DataOffset + 4096;
            PmemLog log = PmemLog.Create(pool, offset, 64 << 10);
            log.Append(new byte[7]);
        }
        (int code, string output, _) = Dpmem.Run("check", path, "--json");
        Assert.Equal(0, code);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            Assert.False(doc.RootElement.GetProperty("pool").TryGetProperty("log", out _));
        }
        (code, output, _) = Dpmem.Run("check", path, "--json", "--log", offset.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(0, code);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            Assert.Equal(1, doc.RootElement.GetProperty("pool").GetProperty("log").GetProperty("records").GetInt64());
        }
        (code, output, _) = Dpmem.Run("check", path, "--json", "--log", (offset + 4096).ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(2, code);
        Assert.StartsWith("signature: no log at offset", Messages(output, "log").Single(), StringComparison.Ordinal);
    }

    [Fact]
    public void AnUnfinishedTransactionIsShownAsWhatRecoveryWouldRollBack()
    {
        string path = Path.Combine(_dir, "heap.pool");
        string crashed = Path.Combine(_dir, "crashed.pool");
        using (PmemPool pool = TestPools.CreateFile(path, PoolSize, "tool-test"))
        {
            using TransactionalHeap heap = pool.CreateTransactionalHeap(new TransactionalHeapOptions { LaneCount = 4, ObjectSize = 64 });
            using (Transaction done = heap.Begin())
            {
                long obj = done.Allocate();
                done.Write(obj, new byte[64]);
                done.Commit();
            }
            using Transaction open = heap.Begin();
            open.GetRef<long>(heap.RootOffset) = 42;
            open.GetRef<long>(heap.RootOffset + 64) = 43;
            // The pool's bytes now are what a crash at this instant leaves (everything written was flushed or not: a page-cache file keeps it all).
            File.WriteAllBytes(crashed, pool.Mapping.GetReadOnlySpan(0, (int)pool.Size).ToArray());
        }
        (int code, string output, string error) = Dpmem.Run("check", crashed, "--json");
        Assert.True(code == 0, output + error);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            JsonElement pool = doc.RootElement.GetProperty("pool");
            Assert.Equal("transactional heap", pool.GetProperty("root").GetString());
            Assert.False(pool.GetProperty("clean").GetBoolean());
            JsonElement heap = pool.GetProperty("heap");
            Assert.Equal(4, heap.GetProperty("lane_count").GetInt32());
            Assert.Equal(1, heap.GetProperty("allocated_objects").GetInt32());
            Assert.Equal(1, heap.GetProperty("lanes_to_roll_back").GetInt32());
            JsonElement lane = Assert.Single(heap.GetProperty("lanes").EnumerateArray(), l => l.GetProperty("pending_entries").GetInt32() > 0);
            Assert.Equal(2, lane.GetProperty("pending_entries").GetInt32());
            Assert.Equal(16, lane.GetProperty("pending_bytes").GetInt64());
            Assert.Contains(doc.RootElement.GetProperty("notes").EnumerateArray(), n => n.GetString()!.Contains("rolls back 2 undo entries", StringComparison.Ordinal));
        }

        (code, output, _) = Dpmem.Run("info", crashed, "--json");
        Assert.Equal(0, code);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            Assert.Equal(1, doc.RootElement.GetProperty("pool").GetProperty("heap").GetProperty("lanes_to_roll_back").GetInt32());
        }

        // A damaged lane generation word is a problem.
        long lanes = LaneOffset(crashed);
        Flip(crashed, lanes + 2);
        (code, output, _) = Dpmem.Run("check", crashed, "--json");
        Assert.Equal(2, code);
        Assert.Contains("lane generation: the generation word of lane 0", Messages(output, "heap").Single(), StringComparison.Ordinal);
    }

    [Fact]
    public void InfoShowsThePoolHeaderFieldsAndTheLogSummary()
    {
        (string path, long[] lsns) = CreatePoolWithLog(5);
        (int code, string output, _) = Dpmem.Run("info", path, "--json");
        Assert.Equal(0, code);
        using JsonDocument doc = JsonDocument.Parse(output);
        JsonElement pool = doc.RootElement.GetProperty("pool");
        Assert.Equal("pool", doc.RootElement.GetProperty("kind").GetString());
        Assert.Equal("1.1", pool.GetProperty("version").GetString());
        Assert.Equal("tool-test", pool.GetProperty("layout").GetString());
        Assert.Equal(PoolSize, pool.GetProperty("pool_size").GetInt64());
        Assert.Equal(4096, pool.GetProperty("page_size").GetInt64());
        Assert.Equal("Directory, DurabilityRecorded", pool.GetProperty("features").GetString());
        Assert.True(Guid.TryParse(pool.GetProperty("uuid").GetString(), out _));
        Assert.StartsWith("endianness 1 (little), pointer size 8", pool.GetProperty("architecture").GetString(), StringComparison.Ordinal);
        Assert.Equal("clean", pool.GetProperty("state").GetString());
        Assert.Equal(5, pool.GetProperty("log").GetProperty("records").GetInt64());
        Assert.Equal(lsns[0], pool.GetProperty("log").GetProperty("head").GetInt64());

        (code, output, _) = Dpmem.Run("info", path);
        Assert.Equal(0, code);
        Assert.Contains("tool-test", output, StringComparison.Ordinal);
        Assert.Contains("5 record(s)", output, StringComparison.Ordinal);
    }

    [Fact]
    public void APoolAtTheStartOfAnEmulatedDeviceIsCheckedAndRepaired()
    {
        string path = Path.Combine(_dir, "dev.emu");
        using (DirectPmem.Driver.DaxDevice device = DirectPmem.Driver.DaxDevice.CreateEmulated(path, 8L << 20, DirectPmem.Geometry.PageSize.Pte))
        {
            using PmemPool pool = TestPools.Create(device.Map(), "device-pool", ownsMapping: true);
            PmemLog log = PmemLog.Create(pool, pool.DataOffset, 64 << 10);
            pool.SetRoot(pool.DataOffset);
            log.Append(new byte[33]);
        }
        (int first, string text, string why) = Dpmem.Run("check", path);
        Assert.True(first == 0, text + why);
        Flip(path, 1000);
        (int code, string output, _) = Dpmem.Run("check", path, "--json");
        Assert.Equal(2, code);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            Assert.Equal("emulated", doc.RootElement.GetProperty("kind").GetString());
            Assert.Equal(1, doc.RootElement.GetProperty("pool").GetProperty("log").GetProperty("records").GetInt64());
        }
        Assert.Contains("primary header (offset 0): checksum", Messages(output, "pool").Single(), StringComparison.Ordinal);
        Assert.Equal(0, Dpmem.Run("check", path, "--repair", "--yes").Code);
        (code, output, _) = Dpmem.Run("info", path, "--json");
        Assert.Equal(0, code);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            Assert.Equal("device-pool", doc.RootElement.GetProperty("pool").GetProperty("layout").GetString());
        }
    }

    [Fact]
    public void GarbageNeverCrashesTheCheck()
    {
        var random = new Random(14);
        for (int round = 0; round < 12; round++)
        {
            (string path, _) = CreatePoolWithLog(4, $"garbage-{round}");
            long logOffset = LogOffset(path);
            using (var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
            {
                byte[] junk = new byte[64 << 10];
                random.NextBytes(junk);
                switch (round % 4)
                {
                    case 0: // the ring is garbage and the tail far ahead
                        file.Position = logOffset + LogHeaderLength;
                        file.Write(junk);
                        WriteLong(file, logOffset + LogTailWord, random.NextInt64(0, 1L << 40) & ~15L);
                        break;
                    case 1: // head and tail are garbage
                        WriteLong(file, logOffset + LogTailWord, random.NextInt64());
                        WriteLong(file, logOffset + LogHeadWord, random.NextInt64());
                        break;
                    case 2: // a frame claims a huge length
                        file.Position = logOffset + LogHeaderLength;
                        file.Write(BitConverter.GetBytes(uint.MaxValue - (uint)random.Next(100)));
                        break;
                    default: // the root points at the end of the pool
                        break;
                }
            }
            if (round % 4 == 3)
            {
                RewriteHeaders(path, h => BinaryPrimitives.WriteInt64LittleEndian(h[152..], PoolSize - 8));
            }
            (int code, string output, string error) = Dpmem.Run("check", path, "--json");
            Assert.True(code is 0 or 2, $"round {round}: exit {code}: {error}");
            // Nothing crashed: stderr is empty, or the one line that says problems remain.
            Assert.True(code == 0 ? error == "" : error.TrimEnd().Split('\n').Single().StartsWith("dpmem: ", StringComparison.Ordinal) && error.Contains("remain", StringComparison.Ordinal), error);
            using JsonDocument doc = JsonDocument.Parse(output);
            Assert.Equal(code == 0, doc.RootElement.GetProperty("clean").GetBoolean());
        }

        // A file of random bytes behind a pool signature, with a valid checksum: every field is garbage.
        string noise = Path.Combine(_dir, "noise");
        byte[] block = new byte[PoolSize];
        random.NextBytes(block);
        "DPMPOOL\0"u8.CopyTo(block);
        BinaryPrimitives.WriteUInt64LittleEndian(block.AsSpan(4088), XxHash3.HashToUInt64(block.AsSpan(0, 4088)));
        File.WriteAllBytes(noise, block);
        (int c, string o, string e) = Dpmem.Run("check", noise, "--json");
        Assert.True(c == 2, o + e);
        Assert.True(Messages(o, "pool").Length >= 3, o);
    }

    private (string Path, long[] Lsns) CreatePoolWithLog(int records, string name = "pool")
    {
        string path = Path.Combine(_dir, name);
        var lsns = new long[records];
        using PmemPool pool = TestPools.CreateFile(path, PoolSize, "tool-test");
        using PmemLog log = PmemLog.Create(pool, pool.DataOffset, 256 << 10);
        pool.SetRoot(pool.DataOffset);
        byte[] record = new byte[100];
        for (int i = 0; i < records; i++)
        {
            record[0] = (byte)i;
            lsns[i] = log.Append(record);
        }
        return (path, lsns);
    }

    private static long LogOffset(string path)
    {
        using PmemPool pool = PmemPool.OpenFile(path, "tool-test", new PoolOpenOptions { ReadOnly = true });
        return pool.RootOffset;
    }

    private static long LaneOffset(string path)
    {
        using PmemPool pool = PmemPool.OpenFile(path, "tool-test", new PoolOpenOptions { ReadOnly = true });
        return pool.DataOffset + 8192; // the heap's lanes follow its two 4 KiB header pages (primary and backup)
    }

    internal static void Flip(string path, long offset)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        file.Position = offset;
        int old = file.ReadByte();
        file.Position = offset;
        file.WriteByte((byte)(old ^ 0x10));
    }

    private static void WriteLong(FileStream file, long offset, long value)
    {
        file.Position = offset;
        file.Write(BitConverter.GetBytes(value));
    }

    // Changes both header copies and keeps their checksums valid.
    private static void RewriteHeaders(string path, SpanAction change)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        byte[] header = new byte[4096];
        file.Position = 0;
        file.ReadExactly(header);
        change(header);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(4088), XxHash3.HashToUInt64(header.AsSpan(0, 4088)));
        file.Position = 0;
        file.Write(header);
        file.Position = 4096;
        file.Write(header);
    }

    private delegate void SpanAction(Span<byte> header);

    private static string[] Messages(string json, string area)
    {
        using JsonDocument doc = JsonDocument.Parse(json);
        return doc.RootElement.GetProperty("problems").EnumerateArray()
            .Where(p => p.GetProperty("area").GetString() == area)
            .Select(p => p.GetProperty("message").GetString()!).ToArray();
    }
}
