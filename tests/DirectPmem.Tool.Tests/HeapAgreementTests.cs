using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text.Json;
using DirectPmem.Mapping;
using DirectPmem.Storage;
using DirectPmem.Storage.Transactions;
using DirectPmem.Tool.Tests.Support;
using Xunit;

namespace DirectPmem.Tool.Tests;

/// <summary>
/// The heap's rules, judged once (issue 21): <see cref="TransactionalHeap.Open"/> and <c>dpmem check</c> run the
/// same validation (<see cref="PoolInspector.InspectHeap"/>), so for each rule the library's exception and the
/// tool's problem are asserted side by side on the same file: the same field, the same sentence.
/// </summary>
public sealed class HeapAgreementTests : IDisposable
{
    private const long PoolSize = 1 << 20;
    private const string Layout = "heap-agree";
    // The heap's on-media layout (not public API): header copies at 0 and 4096 of its region, 128 bytes each,
    // checksum in the last 8; the lanes from 8192.
    private const int HeaderLength = 128;
    private const int BackupOffset = 4096;
    private const int LanesOffset = 8192;
    private const int LaneHeader = 128; // heap format 4: the word and two undo records
    private readonly string _dir = Directory.CreateTempSubdirectory("dpmem-heap-agree-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    public static TheoryData<string, HeapField, string> Damage => new()
    {
        { "signature", HeapField.Signature, "signature" },
        { "format2", HeapField.Version, "version" },
        { "format3", HeapField.Version, "version" },
        { "major9", HeapField.Version, "version" },
        { "incompat", HeapField.Features, "features" },
        { "headersize", HeapField.Version, "version" },
        { "length", HeapField.Length, "length" },
        { "geometry", HeapField.Geometry, "geometry" },
        { "checksum", HeapField.Checksum, "checksum" },
        { "laneword", HeapField.LaneGeneration, "lane generation" },
        { "map", HeapField.ObjectMap, "allocation map" },
    };

    [Theory]
    [MemberData(nameof(Damage))]
    public void EachRuleTheLibraryRefusesTheToolReportsUnderTheSameFieldWithTheSameSentence(string damage, HeapField field, string toolName)
    {
        (string path, long heap) = NewPoolWithHeap(damage);
        long map = MapOffset(path);
        using (var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            switch (damage)
            {
                case "signature": RewriteHeaders(file, heap, h => h[0] ^= 0xFF); break;
                case "format2": RewriteHeaders(file, heap, h => h[8] = 2); break;
                case "format3": RewriteHeaders(file, heap, h => h[8] = 3); break;
                case "major9": RewriteHeaders(file, heap, h => h[8] = 9); break;
                case "incompat": RewriteHeaders(file, heap, h => h[24] = 4); break;
                case "headersize": RewriteHeaders(file, heap, h => h[12] = 64); break;
                case "length": RewriteHeaders(file, heap, h => BinaryPrimitives.WriteInt64LittleEndian(h[40..], BinaryPrimitives.ReadInt64LittleEndian(h[40..]) - 64)); break;
                case "geometry": RewriteHeaders(file, heap, h => BinaryPrimitives.WriteInt64LittleEndian(h[80..], BinaryPrimitives.ReadInt64LittleEndian(h[80..]) + 64)); break;
                case "checksum": Flip(file, heap + 50); Flip(file, heap + BackupOffset + 50); break;
                case "laneword": Flip(file, heap + LanesOffset + 2); break;
                case "map": WriteByte(file, map + 2, 7); break;
            }
        }
        TransactionalHeapFormatException e = Assert.Throws<TransactionalHeapFormatException>(() => OpenHeap(path));
        Assert.Equal(field, e.Field);

        // Named explicitly: with its signature gone the pool's root no longer looks like a heap to the tool.
        (int code, string output, _) = Dpmem.Run("check", path, "--heap", heap.ToString(System.Globalization.CultureInfo.InvariantCulture), "--json");
        Assert.Equal(2, code);
        string problem = Assert.Single(HeapMessages(output));
        Assert.StartsWith(toolName + ": ", problem, StringComparison.Ordinal);
        // The library throws the tool's sentence capitalised, with a final stop (and the field and offset after it).
        string said = problem[(toolName.Length + 2)..];
        Assert.StartsWith(char.ToUpperInvariant(said[0]) + said[1..] + ". (" + field + " at mapping offset 0x" + e.Offset.ToString("x", System.Globalization.CultureInfo.InvariantCulture) + ")", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ADamagedPrimaryHeaderIsRepairableForBothAndTheLibraryRepairsItFromTheBackup()
    {
        (string path, long heap) = NewPoolWithHeap("primary");
        using (var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            Flip(file, heap + 50);
        }
        (int code, string output, _) = Dpmem.Run("check", path, "--json");
        Assert.Equal(2, code);
        Assert.Contains("checksum: the primary heap header", Assert.Single(HeapMessages(output)), StringComparison.Ordinal);
        using (PmemPool pool = PmemPool.OpenFile(path, Layout))
        using (TransactionalHeap opened = pool.OpenTransactionalHeap())
        {
            Assert.Equal(PoolHeaderRepair.PrimaryRestoredFromBackup, opened.Recovery.HeaderRepair);
            Assert.False(opened.IsReadOnly);
        }
        (code, output, string error) = Dpmem.Run("check", path, "--json");
        Assert.True(code == 0, output + error);
        Assert.Empty(HeapMessages(output));
    }

    [Fact]
    public void AnUndoEntryOutsideTheTransactionalAreaIsRefusedByBoth()
    {
        (string path, long heap) = NewPoolWithHeap("outside", crashInTransaction: true);
        // The first entry of lane 0's odd log (generation 1's): its target moved below the root, checksum recomputed.
        long entry = heap + LanesOffset + LaneHeader + LaneLogSize;
        using (var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            byte[] header = new byte[32];
            file.Position = entry;
            file.ReadExactly(header);
            int length = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(24));
            byte[] whole = new byte[32 + length];
            file.Position = entry;
            file.ReadExactly(whole);
            BinaryPrimitives.WriteInt64LittleEndian(whole.AsSpan(16), 64);
            BinaryPrimitives.WriteUInt64LittleEndian(whole, XxHash3.HashToUInt64(whole.AsSpan(8), 0x4450_5458));
            file.Position = entry;
            file.Write(whole);
        }
        TransactionalHeapFormatException e = Assert.Throws<TransactionalHeapFormatException>(() => OpenHeap(path));
        Assert.Equal(HeapField.UndoEntry, e.Field);
        Assert.Equal(entry, e.Offset);
        (int code, string output, _) = Dpmem.Run("check", path, "--json");
        Assert.Equal(2, code);
        string problem = Assert.Single(HeapMessages(output));
        Assert.StartsWith("undo entry: an undo entry of lane 0 verifies but names [0x40, +", problem, StringComparison.Ordinal);
        Assert.Contains(problem["undo entry: a".Length..], e.Message, StringComparison.Ordinal);
    }

    private const int LaneLogSize = 4096;

    private (string Path, long HeapOffset) NewPoolWithHeap(string name, bool crashInTransaction = false)
    {
        string path = Path.Combine(_dir, name);
        using PmemPool pool = TestPools.CreateFile(path, PoolSize, Layout);
        TransactionalHeap heap = pool.CreateTransactionalHeap(new TransactionalHeapOptions { LaneCount = 1, LaneLogSize = LaneLogSize, ObjectSize = 64, RootSize = 4096 });
        if (crashInTransaction)
        {
            Transaction tx = heap.Begin();
            tx.Modify(heap.RootOffset, 8)[0] = 1;
            // The bytes now are what a crash at this instant leaves (a page-cache file holds everything written).
            File.WriteAllBytes(path + ".crashed", pool.Mapping.GetReadOnlySpan(0, (int)pool.Size).ToArray());
            tx.Dispose();
            heap.Dispose();
            return (path + ".crashed", pool.DataOffset);
        }
        heap.Dispose();
        return (path, pool.DataOffset);
    }

    private static void OpenHeap(string path)
    {
        using PmemPool pool = PmemPool.OpenFile(path, Layout);
        pool.OpenTransactionalHeap().Dispose();
    }

    private static long MapOffset(string path)
    {
        using PmemFile file = PmemFile.Open(path, writable: false);
        using DaxMapping map = file.Map(new DaxMappingOptions { ReadOnly = true });
        PoolInspection pool = PoolInspector.InspectPool(map);
        HeapInspection heap = PoolInspector.InspectHeap(map, pool.RootOffset);
        // The map follows the root: the transactional area starts with the root.
        return pool.RootOffset + LanesOffset + LaneHeader + 2L * heap.LaneLogSize + heap.RootSize;
    }

    // Changes both header copies and keeps their checksums valid.
    private static void RewriteHeaders(FileStream file, long heap, SpanAction change)
    {
        byte[] header = new byte[HeaderLength];
        file.Position = heap;
        file.ReadExactly(header);
        change(header);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(HeaderLength - 8), XxHash3.HashToUInt64(header.AsSpan(0, HeaderLength - 8)));
        file.Position = heap;
        file.Write(header);
        file.Position = heap + BackupOffset;
        file.Write(header);
    }

    private delegate void SpanAction(Span<byte> header);

    private static void Flip(FileStream file, long offset)
    {
        file.Position = offset;
        int b = file.ReadByte();
        WriteByte(file, offset, (byte)(b ^ 0x10));
    }

    private static void WriteByte(FileStream file, long offset, byte value)
    {
        file.Position = offset;
        file.WriteByte(value);
    }

    private static string[] HeapMessages(string json)
    {
        using JsonDocument doc = JsonDocument.Parse(json);
        return [.. doc.RootElement.GetProperty("problems").EnumerateArray()
            .Where(p => p.GetProperty("area").GetString() == "heap")
            .Select(p => p.GetProperty("message").GetString()!)];
    }
}
