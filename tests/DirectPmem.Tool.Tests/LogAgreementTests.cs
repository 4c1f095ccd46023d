using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using System.Text.Json;
using DirectPmem.Storage;
using DirectPmem.Tool.Tests.Support;
using Xunit;

namespace DirectPmem.Tool.Tests;

/// <summary>
/// The log's rules, judged once (issue 21): <see cref="PmemLog.Open(PmemPool, long)"/> and <c>dpmem check</c> run the
/// same validation (<see cref="PmemLog.Inspect"/>), so for each rule the library's exception and the tool's problem
/// are asserted side by side on the same damaged file: the same field, the same sentence.
/// </summary>
public sealed class LogAgreementTests : IDisposable
{
    private const long PoolSize = 1 << 20;
    private const string Layout = "log-agree";
    private const long LogLength = 64 << 10;
    // The log's on-media layout (not public API), format 5: a 128-byte header block at the log's offset (the shared
    // prefix: signature, major u16 @8, minor u16 @10, header size u32 @12, compat @16, incompat @24, ro-compat @32;
    // capacity @40, nonce @48, window @56; the XxHash3 of [0, 120) @120), the tail word @128, the head word @192.
    private const int BlockLength = 128;
    private const int TailWord = 128;
    private const int HeadWord = 192;
    private readonly string _dir = Directory.CreateTempSubdirectory("dpmem-log-agree-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    public static TheoryData<string, LogHeaderField, string> Damage => new()
    {
        { "signature", LogHeaderField.Magic, "signature" },
        { "format3", LogHeaderField.Version, "version" },
        { "format1", LogHeaderField.Version, "version" },
        { "major9", LogHeaderField.Version, "version" },
        { "major2", LogHeaderField.Version, "version" },
        { "headersize", LogHeaderField.Version, "version" },
        { "incompat", LogHeaderField.Features, "features" },
        { "checksum", LogHeaderField.Checksum, "checksum" },
        { "capacity", LogHeaderField.Capacity, "capacity" },
        { "window", LogHeaderField.Window, "window" },
        { "tail", LogHeaderField.Tail, "tail" },
        { "head", LogHeaderField.Head, "head" },
    };

    [Theory]
    [MemberData(nameof(Damage))]
    public void EachRuleTheLibraryRefusesTheToolReportsUnderTheSameFieldWithTheSameSentence(string damage, LogHeaderField field, string toolName)
    {
        (string path, long log) = NewPoolWithLog(damage);
        using (var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            switch (damage)
            {
                case "signature": Rewrite(file, log, h => h[0] ^= 0xFF, reseal: false); break;
                case "format3": WriteOldHeader(file, log, 3); break;
                case "format1": WriteOldHeader(file, log, 1); break;
                case "major9": Rewrite(file, log, h => h[8] = 9); break;
                case "major2": Rewrite(file, log, h => h[8] = 2); break;
                case "headersize": Rewrite(file, log, h => h[12] = 64); break;
                case "incompat": Rewrite(file, log, h => h[24] = 4); break;
                case "checksum": Rewrite(file, log, h => h[50] ^= 0x10, reseal: false); break;
                case "capacity": Rewrite(file, log, h => BinaryPrimitives.WriteInt64LittleEndian(h[40..], 1L << 40)); break;
                case "window": Rewrite(file, log, h => BinaryPrimitives.WriteInt64LittleEndian(h[56..], 8)); break;
                case "tail": Rewrite(file, log, h => BinaryPrimitives.WriteInt64LittleEndian(h[TailWord..], 17), reseal: false); break;
                case "head": Rewrite(file, log, h => BinaryPrimitives.WriteInt64LittleEndian(h[HeadWord..], 1L << 30), reseal: false); break;
            }
        }
        LogFormatException e = Assert.Throws<LogFormatException>(() => OpenLog(path, log));
        Assert.Equal(field, e.Field);

        // Named explicitly: with its signature gone the pool's root no longer looks like a log to the tool.
        (int code, string output, _) = Dpmem.Run("check", path, "--log", log.ToString(CultureInfo.InvariantCulture), "--json");
        Assert.Equal(2, code);
        string problem = Assert.Single(LogMessages(output));
        Assert.StartsWith(toolName + ": ", problem, StringComparison.Ordinal);
        // The library throws the tool's sentence capitalised, with a final stop.
        string said = problem[(toolName.Length + 2)..];
        Assert.Equal(char.ToUpperInvariant(said[0]) + said[1..] + ".", e.Message);
        if (damage.StartsWith("format", StringComparison.Ordinal))
        {
            Assert.Contains("does not convert older logs", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void AnUnknownReadOnlyCompatibleFeatureIsReadOnlyForBoth()
    {
        (string path, long log) = NewPoolWithLog("rocompat");
        using (var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            Rewrite(file, log, h => h[32] = 2);
        }
        using (PmemPool pool = PmemPool.OpenFile(path, Layout))
        using (PmemLog opened = PmemLog.Open(pool, log))
        {
            Assert.True(opened.IsReadOnly);
        }
        (int code, string output, _) = Dpmem.Run("check", path, "--json");
        Assert.Equal(2, code);
        string problem = Assert.Single(LogMessages(output));
        Assert.StartsWith("features: the log header uses read-only-compatible features this library does not know (0x2)", problem, StringComparison.Ordinal);
        Assert.EndsWith("(PmemLog.Open opens it read-only)", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void AnUnknownCompatibleFeatureIsANoteForTheToolAndNothingForTheLibrary()
    {
        (string path, long log) = NewPoolWithLog("compat");
        using (var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            Rewrite(file, log, h => h[16] = 1);
        }
        using (PmemPool pool = PmemPool.OpenFile(path, Layout))
        using (PmemLog opened = PmemLog.Open(pool, log))
        {
            Assert.False(opened.IsReadOnly);
        }
        (int code, string output, string error) = Dpmem.Run("check", path, "--json");
        Assert.True(code == 0, output + error);
        Assert.Empty(LogMessages(output));
        using JsonDocument doc = JsonDocument.Parse(output);
        Assert.Contains(doc.RootElement.GetProperty("notes").EnumerateArray(),
            n => n.GetString()!.StartsWith("log features: the log header has compatible features this library does not know (0x1): ignored", StringComparison.Ordinal));
    }

    [Fact]
    public void CheckAndInfoShowTheLogFormatVersion()
    {
        (string path, _) = NewPoolWithLog("version");
        (int code, string output, string error) = Dpmem.Run("check", path, "--json");
        Assert.True(code == 0, output + error);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            Assert.Equal("5.0", doc.RootElement.GetProperty("pool").GetProperty("log").GetProperty("format_version").GetString());
        }
        (code, output, error) = Dpmem.Run("check", path);
        Assert.True(code == 0, output + error);
        Assert.Contains(": format 5.0, capacity ", output, StringComparison.Ordinal);
        (code, output, error) = Dpmem.Run("info", path);
        Assert.True(code == 0, output + error);
        Assert.Contains("format 5.0", output, StringComparison.Ordinal);
    }

    private (string Path, long LogOffset) NewPoolWithLog(string name)
    {
        string path = Path.Combine(_dir, name);
        using PmemPool pool = TestPools.CreateFile(path, PoolSize, Layout);
        using PmemLog log = PmemLog.Create(pool, pool.DataOffset, LogLength);
        pool.SetRoot(pool.DataOffset);
        log.Append(new byte[40]);
        log.Append(new byte[70]);
        return (path, pool.DataOffset);
    }

    private static void OpenLog(string path, long offset)
    {
        using PmemPool pool = PmemPool.OpenFile(path, Layout);
        PmemLog.Open(pool, offset).Dispose();
    }

    // Changes the header's first 256 bytes (block, tail word, head word); reseals the block's checksum unless told not to.
    private static void Rewrite(FileStream file, long log, SpanAction change, bool reseal = true)
    {
        byte[] header = new byte[256];
        file.Position = log;
        file.ReadExactly(header);
        change(header);
        if (reseal)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(BlockLength - 8), XxHash3.HashToUInt64(header.AsSpan(0, BlockLength - 8)));
        }
        file.Position = log;
        file.Write(header);
    }

    // The header as formats 1 to 3 (earlier previews) wrote it: magic, u32 version @8, capacity @16, nonce @24,
    // window @32, the XxHash3 of [0, 40) @40; the tail word @64 and the head word @128.
    private static void WriteOldHeader(FileStream file, long log, uint version)
    {
        byte[] header = new byte[256];
        "DPMLOG01"u8.CopyTo(header);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), version);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(16), LogLength - 4096);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(24), 77);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(32), (LogLength - 4096) / 2);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(40), XxHash3.HashToUInt64(header.AsSpan(0, 40)));
        file.Position = log;
        file.Write(header);
    }

    private delegate void SpanAction(Span<byte> header);

    private static string[] LogMessages(string json)
    {
        using JsonDocument doc = JsonDocument.Parse(json);
        return [.. doc.RootElement.GetProperty("problems").EnumerateArray()
            .Where(p => p.GetProperty("area").GetString() == "log")
            .Select(p => p.GetProperty("message").GetString()!)];
    }
}
