using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using System.Text.Json;
using DirectPmem.Storage;
using DirectPmem.Tool.Tests.Support;
using Xunit;

namespace DirectPmem.Tool.Tests;

/// <summary>
/// One test per rule that once drifted between <c>dpmem check</c> and <see cref="PmemPool.Open"/> (issue 21):
/// the tool now judges a pool with the library's own parser and validation, so for each rule the library's
/// verdict and the tool's are asserted side by side on the same file.
/// </summary>
public sealed class PoolAgreementTests : IDisposable
{
    private const long PoolSize = 1 << 20;
    private const string Layout = "agree";
    private readonly string _dir = Directory.CreateTempSubdirectory("dpmem-agree-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void AMajorVersionNewerThanTheLibraryIsRefusedByBothAndANewerMinorIsAcceptedByBoth()
    {
        string newer = NewPool("major");
        RewriteHeaders(newer, h => BinaryPrimitives.WriteUInt16LittleEndian(h[8..], 2));
        PoolFormatException e = Assert.Throws<PoolFormatException>(() => PmemPool.OpenFile(newer, Layout, new PoolOpenOptions { ReadOnly = true }).Dispose());
        Assert.Equal(PoolHeaderField.MajorVersion, e.Field);
        (int code, string output, _) = Dpmem.Run("check", newer, "--json");
        Assert.Equal(2, code);
        Assert.Contains(Messages(output), m => m.Contains("major version: the pool header's format version is 2.", StringComparison.Ordinal));

        // The old tool refused every major but 1 and knew nothing of minors; both now read any minor of the current major.
        string minor = NewPool("minor");
        RewriteHeaders(minor, h => BinaryPrimitives.WriteUInt16LittleEndian(h[10..], 9));
        using (PmemPool pool = PmemPool.OpenFile(minor, Layout, new PoolOpenOptions { ReadOnly = true }))
        {
            Assert.Equal(new Version(1, 9), pool.FormatVersion);
        }
        (code, output, string error) = Dpmem.Run("check", minor, "--json");
        Assert.True(code == 0, output + error);
    }

    [Fact]
    public void KnownFeatureBitsAreAcceptedByBothAndUnknownOnesJudgedAlike()
    {
        // A pool of this version sets its known ro-compat (directory) and compat (durability) bits: not "!= 0".
        string known = NewPool("known");
        using (PmemPool pool = PmemPool.OpenFile(known, Layout))
        {
            Assert.False(pool.IsReadOnly);
            Assert.Equal(PoolFeatures.Directory | PoolFeatures.DurabilityRecorded, pool.Features);
        }
        (int code, string output, string error) = Dpmem.Run("check", known, "--json");
        Assert.True(code == 0, output + error);
        Assert.DoesNotContain(Notes(output), n => n.Contains("features", StringComparison.Ordinal));

        // An unknown ro-compat bit: the library opens read-only, the tool says so (a note, not a problem).
        string roCompat = NewPool("rocompat");
        RewriteHeaders(roCompat, h => BinaryPrimitives.WriteUInt64LittleEndian(h[32..], BinaryPrimitives.ReadUInt64LittleEndian(h[32..]) | 0x100));
        using (PmemPool pool = PmemPool.OpenFile(roCompat, Layout))
        {
            Assert.True(pool.IsReadOnly);
            Assert.Contains("0x100", pool.ReadOnlyReason, StringComparison.Ordinal);
        }
        (code, output, error) = Dpmem.Run("check", roCompat, "--json");
        Assert.True(code == 0, output + error);
        Assert.Contains(Notes(output), n => n.Contains("read-only-compatible features this library does not know (0x100)", StringComparison.Ordinal));

        // An unknown incompat bit: both refuse.
        string incompat = NewPool("incompat");
        RewriteHeaders(incompat, h => BinaryPrimitives.WriteUInt64LittleEndian(h[24..], 0x2));
        Assert.Equal(PoolHeaderField.IncompatFeatures, Assert.Throws<PoolFormatException>(() => PmemPool.OpenFile(incompat, Layout, new PoolOpenOptions { ReadOnly = true }).Dispose()).Field);
        (code, output, _) = Dpmem.Run("check", incompat, "--json");
        Assert.Equal(2, code);
        Assert.Contains(Messages(output), m => m.Contains("incompat features: the pool header uses incompatible features this library does not know (0x2)", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("unterminated")]
    [InlineData("garbage-after-nul")]
    [InlineData("invalid-utf8")]
    [InlineData("empty")]
    public void ALayoutFieldTheParserRejectsIsRejectedByBoth(string damage)
    {
        string path = NewPool(damage);
        RewriteHeaders(path, h =>
        {
            Span<byte> field = h.Slice(56, 64);
            switch (damage)
            {
                case "unterminated": field.Fill((byte)'x'); break;
                case "garbage-after-nul": field[40] = (byte)'!'; break;
                case "invalid-utf8": field[0] = 0xC3; field[1] = 0x28; break;
                case "empty": field.Clear(); break;
            }
        });
        PoolFormatException e = Assert.Throws<PoolFormatException>(() => PmemPool.OpenFile(path, Layout, new PoolOpenOptions { ReadOnly = true }).Dispose());
        Assert.Equal(PoolHeaderField.Layout, e.Field);
        (int code, string output, _) = Dpmem.Run("check", path, "--json");
        Assert.Equal(2, code);
        string problem = Assert.Single(Messages(output));
        Assert.Contains("layout: the layout name", problem, StringComparison.Ordinal);
        // The same sentence from the same parser (the library's starts with a capital and ends with the path).
        string said = problem[(problem.IndexOf("layout: ", StringComparison.Ordinal) + "layout: t".Length)..];
        Assert.Contains(said, e.Message, StringComparison.Ordinal);
    }

    public static TheoryData<string, PoolHeaderField, string> FieldDamage => new()
    {
        { "major0", PoolHeaderField.MajorVersion, "major version" },
        { "headersize", PoolHeaderField.HeaderSize, "header size" },
        { "endianness", PoolHeaderField.Architecture, "architecture" },
        { "machine", PoolHeaderField.Architecture, "architecture" },
        { "size", PoolHeaderField.Size, "size" },
        { "pagesize", PoolHeaderField.PageSize, "page size" },
        { "reserved", PoolHeaderField.ReservedArea, "reserved area" },
        { "data", PoolHeaderField.DataOffset, "data offset" },
        { "root", PoolHeaderField.RootOffset, "root offset" },
        { "state", PoolHeaderField.State, "state" },
        { "durability", PoolHeaderField.Durability, "durability" },
    };

    [Theory]
    [MemberData(nameof(FieldDamage))]
    public void EachFieldTheLibraryRefusesTheToolReportsUnderTheSameField(string damage, PoolHeaderField field, string toolName)
    {
        string path = NewPool(damage);
        RewriteHeaders(path, h =>
        {
            switch (damage)
            {
                case "major0": BinaryPrimitives.WriteUInt16LittleEndian(h[8..], 0); break;
                case "headersize": BinaryPrimitives.WriteUInt32LittleEndian(h[12..], 512); break;
                case "endianness": h[144] = 2; break;
                case "machine": BinaryPrimitives.WriteUInt16LittleEndian(h[146..], 9999); break;
                case "size": BinaryPrimitives.WriteInt64LittleEndian(h[128..], PoolSize * 2); break;
                case "pagesize": BinaryPrimitives.WriteInt64LittleEndian(h[136..], 2 << 20); break;
                case "reserved": BinaryPrimitives.WriteInt64LittleEndian(h[168..], 4096); break; // less than the directory
                case "data": BinaryPrimitives.WriteInt64LittleEndian(h[176..], BinaryPrimitives.ReadInt64LittleEndian(h[176..]) + 4096); break;
                case "root": BinaryPrimitives.WriteInt64LittleEndian(h[152..], 4096); break;
                case "state": BinaryPrimitives.WriteUInt32LittleEndian(h[184..], 7); break;
                case "durability": h[208] = 77; break;
            }
        });
        PoolFormatException e = Assert.Throws<PoolFormatException>(() => PmemPool.OpenFile(path, Layout, new PoolOpenOptions { ReadOnly = true }).Dispose());
        Assert.Equal(field, e.Field);
        (int code, string output, _) = Dpmem.Run("check", path, "--json");
        Assert.Equal(2, code);
        string problem = Assert.Single(Messages(output), m => m.StartsWith("primary header, " + toolName + ": ", StringComparison.Ordinal));
        // The same sentence: the library's message is the tool's with a capital and a final stop (and the path).
        string said = problem[("primary header, " + toolName + ": t").Length..];
        Assert.Contains(said, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheToolReportsTheFieldsTheLibraryReads()
    {
        string path = NewPool("fields");
        Guid uuid;
        long dataOffset, reservedLength, root;
        using (PmemPool pool = PmemPool.OpenFile(path, Layout))
        {
            pool.SetRoot(pool.DataOffset + 4096);
            pool.Reserve("volume", 64 << 10);
            uuid = pool.Uuid;
            dataOffset = pool.DataOffset;
            reservedLength = pool.ReservedLength;
            root = pool.RootOffset;
        }
        (int code, string output, string error) = Dpmem.Run("info", path, "--json");
        Assert.True(code == 0, output + error);
        using JsonDocument doc = JsonDocument.Parse(output);
        JsonElement report = doc.RootElement.GetProperty("pool");
        Assert.Equal(uuid.ToString(), report.GetProperty("uuid").GetString());
        Assert.Equal(Layout, report.GetProperty("layout").GetString());
        Assert.Equal(dataOffset, report.GetProperty("data_offset").GetInt64());
        Assert.Equal(reservedLength, report.GetProperty("reserved_length").GetInt64());
        Assert.Equal(root, report.GetProperty("root_offset").GetInt64());
        JsonElement structure = Assert.Single(report.GetProperty("structures").EnumerateArray());
        Assert.Equal("volume", structure.GetProperty("name").GetString());
        Assert.Equal("Reserved", structure.GetProperty("kind").GetString());
        using var file = DirectPmem.Mapping.PmemFile.Open(path, writable: false);
        using DirectPmem.Mapping.DaxMapping view = file.Map(new DirectPmem.Mapping.DaxMappingOptions { ReadOnly = true });
        PoolInspection inspection = PoolInspector.InspectPool(view, Layout);
        Assert.True(inspection.Opens);
        Assert.NotNull(inspection.Durability);
        string volatileNote = inspection.CreatedOnVolatileMemory ? " (volatile memory, created with PoolCreateOptions.AllowVolatile: not durable across a reboot)" : "";
        Assert.Equal($"{inspection.Durability} on {inspection.CreatedOnBacking}{volatileNote}", report.GetProperty("durability").GetString());
        Assert.Equal(inspection.CreatedOnVolatileMemory, report.GetProperty("created_on_volatile_memory").GetBoolean());
    }

    [Fact]
    public void CheckingACrashedPoolLeavesItInUseForTheApplicationsRecovery()
    {
        string path = NewPool("crashed", leaveOpen: true);
        (int code, string output, string error) = Dpmem.Run("check", path, "--json");
        Assert.True(code == 0, output + error);
        Assert.Contains(Notes(output), n => n.Contains("not closed cleanly", StringComparison.Ordinal));
        // The check wrote nothing: a second check and the application's own open still see the crash.
        (code, output, _) = Dpmem.Run("check", path, "--json");
        Assert.Contains(Notes(output), n => n.Contains("not closed cleanly", StringComparison.Ordinal));
        using PmemPool pool = PmemPool.OpenFile(path, Layout);
        Assert.False(pool.WasCleanlyClosed);
        Assert.True(pool.NeedsRecovery);
    }

    private string NewPool(string name, bool leaveOpen = false)
    {
        string path = Path.Combine(_dir, name);
        if (!leaveOpen)
        {
            TestPools.CreateFile(path, PoolSize, Layout).Dispose();
            return path;
        }
        // The bytes of a pool that is open (marked in use) are what a crash at this instant leaves.
        using PmemPool open = TestPools.CreateFile(path + ".live", PoolSize, Layout);
        File.WriteAllBytes(path, open.Mapping.GetReadOnlySpan(0, (int)open.Size).ToArray());
        return path;
    }

    // Changes both header copies and keeps their checksums valid.
    private static void RewriteHeaders(string path, SpanAction change)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        byte[] header = new byte[4096];
        file.ReadExactly(header);
        change(header);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(4088), XxHash3.HashToUInt64(header.AsSpan(0, 4088)));
        file.Position = 0;
        file.Write(header);
        file.Write(header);
    }

    private delegate void SpanAction(Span<byte> header);

    private static string[] Messages(string json)
    {
        using JsonDocument doc = JsonDocument.Parse(json);
        return doc.RootElement.GetProperty("problems").EnumerateArray().Select(p => p.GetProperty("message").GetString()!).ToArray();
    }

    private static string[] Notes(string json)
    {
        using JsonDocument doc = JsonDocument.Parse(json);
        return doc.RootElement.GetProperty("notes").EnumerateArray().Select(p => p.GetString()!).ToArray();
    }
}
