using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Driver;

/// <summary>
/// Fuzzes the two on-media formats the driver trusts: the label area and the emulated-device
/// descriptor. Half the cases mutate raw bytes (the checksums must catch them); the other half
/// rewrite one field and recompute the checksum, so the checks behind the checksum are reached.
/// Every result is a valid table (checked entry by entry, then allocated into and reopened) or a
/// typed error, and no allocation is silently lost.
/// </summary>
/// <remarks>
/// Cases per test: <c>DIRECTPMEM_FUZZ_CASES</c> (default 3000, the CI setting); seed:
/// <c>DIRECTPMEM_FUZZ_SEED</c> (default fixed). A failure names the case to replay.
/// </remarks>
public sealed class LabelAndDescriptorFuzzTests(ITestOutputHelper output)
{
    private const long DeviceSize = 64L << 20;
    private const PageSize Align = PageSize.Pte;
    private const string Path = "fuzzed";

    private static int Cases => int.TryParse(Environment.GetEnvironmentVariable("DIRECTPMEM_FUZZ_CASES"), out int n) && n > 0 ? n : 3000;

    private static int Seed => int.TryParse(Environment.GetEnvironmentVariable("DIRECTPMEM_FUZZ_SEED"), out int s) ? s : 0x1ABE1;

    private static readonly long[] s_interesting =
    [
        0, 1, -1, 8, 64, 4095, 4096, 4097, 8192, 2L << 20, 1L << 30, DeviceSize - 4096, DeviceSize, DeviceSize + 4096,
        int.MaxValue, uint.MaxValue, long.MaxValue, long.MinValue, long.MaxValue - 4095, 62, 63, 0x4C4542414C4D5044,
    ];

    private readonly record struct Outcome(bool Opened, string? Rule);

    [Fact]
    public void FuzzedLabelAreasOpenAsAValidTableOrATypedErrorAndLoseNoCommittedAllocation()
    {
        using DaxMapping medium = DaxMapping.CreateAnonymous(2 * LabelSlot.Size);
        (byte[] image, string[] older, string[] newer, int newestSlot) = BaseLabels(medium);
        var random = new Random(Seed);
        var outcomes = new Dictionary<string, int>();
        int cases = Cases;
        for (int c = 0; c < cases; c++)
        {
            image.CopyTo(medium.GetSpan(0, image.Length));
            bool rewrite = random.Next(2) == 0;
            string what = rewrite ? RewriteField(medium, random, newestSlot) : MutateBytes(medium, random);
            string key;
            try
            {
                key = CheckLabels(medium, older, newer, newestSlot, rewrite);
            }
            catch (Exception e) when (e is not DaxLabelException)
            {
                throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                    $"case {c} (seed {Seed}, {what}): {e.GetType().Name}: {e.Message}"), e);
            }
            outcomes[key] = outcomes.GetValueOrDefault(key) + 1;
        }
        output.WriteLine($"{cases} label cases (seed {Seed}): " + string.Join(", ", outcomes.OrderBy(o => o.Key, StringComparer.Ordinal).Select(o => $"{o.Key}={o.Value}")));
        // Both kinds of result are reached, and the checks behind the checksum are too.
        Assert.Contains(outcomes.Keys, k => k.StartsWith("opened", StringComparison.Ordinal));
        Assert.Contains("BadChecksum", outcomes.Keys);
        Assert.True(outcomes.Keys.Count(k => k is not ("BadChecksum" or "BadCommit" or "BadMagic") && !k.StartsWith("opened", StringComparison.Ordinal)) >= 5,
            "too few rules behind the checksum were reached: " + string.Join(", ", outcomes.Select(o => $"{o.Key}={o.Value}")));
    }

    // A table with five ranges written by the allocator; the last update (a Free) leaves the two
    // slots holding the table before it (older) and after it (newer).
    private static (byte[] Image, string[] Older, string[] Newer, int NewestSlot) BaseLabels(DaxMapping medium)
    {
        using DaxRangeAllocator allocator = DaxRangeAllocator.FormatMedium(medium, DeviceSize, Align, Path);
        allocator.Allocate("log", 3 * 4096);
        allocator.Allocate("huge", 4L << 20, PageSize.Pmd);
        allocator.AllocateAt("pinned", 32L << 20, 8192);
        allocator.Allocate("é-name", 4096);
        allocator.Allocate("temp", 4096);
        string[] older = Describe(allocator.Ranges);
        allocator.Free("temp");
        return (medium.GetReadOnlySpan(0, 2 * LabelSlot.Size).ToArray(), older, Describe(allocator.Ranges), allocator.ActiveSlot);
    }

    private static string[] Describe(IReadOnlyList<DaxAllocation> ranges) => [.. ranges.Select(r => r.ToString())];

    private static string MutateBytes(DaxMapping medium, Random random)
    {
        Span<byte> area = medium.GetSpan(0, 2 * LabelSlot.Size);
        int count = 1 + random.Next(4);
        var said = new List<string>();
        for (int i = 0; i < count; i++)
        {
            int kind = random.Next(4);
            int at = random.Next(area.Length);
            switch (kind)
            {
                case 0:
                    area[at] ^= (byte)(1 << random.Next(8));
                    said.Add($"flip bit of byte {at}");
                    break;
                case 1:
                    area[at] = (byte)random.Next(256);
                    said.Add($"byte {at} := random");
                    break;
                case 2:
                    at &= ~7;
                    BinaryPrimitives.WriteUInt64LittleEndian(area[at..], random.Next(2) == 0 ? 0 : ulong.MaxValue);
                    said.Add($"word {at} := 0 or ~0");
                    break;
                default:
                    // One slot's header over the other's (a misdirected write).
                    int from = random.Next(2);
                    area.Slice(from * LabelSlot.Size, 64).CopyTo(area.Slice((1 - from) * LabelSlot.Size, 64));
                    said.Add($"header of slot {from} copied over the other");
                    break;
            }
        }
        return string.Join("; ", said);
    }

    private static string RewriteField(DaxMapping medium, Random random, int newestSlot)
    {
        int slot = random.Next(4) == 0 ? 1 - newestSlot : newestSlot;
        Span<byte> s = medium.GetSpan(slot * LabelSlot.Size, LabelSlot.Size);
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(s[56..]);
        long value = random.Next(3) == 0 ? random.NextInt64(long.MinValue, long.MaxValue) : s_interesting[random.Next(s_interesting.Length)];
        string what;
        switch (random.Next(14))
        {
            case 0: BinaryPrimitives.WriteUInt32LittleEndian(s[16..], (uint)value); what = "version"; break;
            case 1: BinaryPrimitives.WriteUInt32LittleEndian(s[20..], (uint)value); what = "slot index"; break;
            case 2: BinaryPrimitives.WriteInt64LittleEndian(s[24..], value); what = "sequence"; break;
            case 3: BinaryPrimitives.WriteInt64LittleEndian(s[32..], value); what = "device size"; break;
            case 4: BinaryPrimitives.WriteInt64LittleEndian(s[40..], value); what = "align"; break;
            case 5: BinaryPrimitives.WriteInt64LittleEndian(s[48..], value); what = "area"; break;
            case 6: BinaryPrimitives.WriteUInt32LittleEndian(s[56..], (uint)value); what = "count"; break;
            case 7: BinaryPrimitives.WriteUInt32LittleEndian(s[60..], (uint)value); what = "entry size"; break;
            default:
            {
                int entry = random.Next((int)Math.Min(count + 1, (uint)LabelSlot.MaxEntries));
                Span<byte> e = s.Slice(LabelSlot.HeaderSize + entry * LabelSlot.EntrySize, LabelSlot.EntrySize);
                int field = random.Next(6);
                what = $"entry {entry} field {field}";
                switch (field)
                {
                    case 0: e[random.Next(32)] = (byte)random.Next(256); break;               // a name byte
                    case 1: BinaryPrimitives.WriteInt64LittleEndian(e[32..], value); break;  // offset
                    case 2: BinaryPrimitives.WriteInt64LittleEndian(e[40..], value); break;  // length
                    case 3: BinaryPrimitives.WriteInt64LittleEndian(e[48..], value); break;  // page size
                    case 4: BinaryPrimitives.WriteInt64LittleEndian(e[56..], value); break;  // flags
                    default:                                                                  // another entry's name
                        s.Slice(LabelSlot.HeaderSize + random.Next((int)Math.Max(count, 1)) * LabelSlot.EntrySize, 32).CopyTo(e);
                        break;
                }
                break;
            }
        }
        BinaryPrimitives.WriteUInt64LittleEndian(s[LabelSlot.ChecksumOffset..], XxHash3.HashToUInt64(s[8..LabelSlot.ChecksumOffset]));
        if (what == "sequence" && random.Next(2) == 0)
        {
            // Keep the publish word consistent, so the slot choice itself is fuzzed.
            BinaryPrimitives.WriteUInt64LittleEndian(s, ~(ulong)value);
        }
        return $"slot {slot} {what} := {value} (checksum recomputed)";
    }

    private static string CheckLabels(DaxMapping medium, string[] older, string[] newer, int newestSlot, bool rewrite)
    {
        DaxRangeAllocator allocator;
        try
        {
            allocator = DaxRangeAllocator.OpenMedium(medium, DeviceSize, Align, Path);
        }
        catch (DaxLabelException e)
        {
            return e.Rule.ToString();
        }
        string[] found;
        using (allocator)
        {
            IReadOnlyList<DaxAllocation> ranges = allocator.Ranges;
            AssertValidTable(ranges);
            found = Describe(ranges);
            if (!rewrite)
            {
                // Raw damage is never taken for data: the table is the newest one, or the older one
                // when the newest slot's publish word became 0 (the state a crash before publishing leaves).
                bool newestUnpublished = BinaryPrimitives.ReadUInt64LittleEndian(medium.GetReadOnlySpan(newestSlot * LabelSlot.Size, 8)) == 0;
                Assert.True(found.SequenceEqual(newer) || (newestUnpublished && found.SequenceEqual(older)),
                    $"raw damage opened as [{string.Join(", ", found)}]");
            }
            if (allocator.Ranges.Count < DaxRangeAllocator.MaxRanges && allocator.Ranges.All(r => r.Name != "fuzz-new"))
            {
                Exception? refused = Record.Exception(() => allocator.Allocate("fuzz-new", 4096));
                if (refused is not null)
                {
                    Assert.Equal(DaxLabelRule.Full, Assert.IsType<DaxLabelException>(refused).Rule);
                    return "opened-full";
                }
                found = [.. found, "fuzz-new"];
            }
        }
        // Whatever table was accepted, an update to it survives a reopen with nothing lost.
        using DaxRangeAllocator reopened = DaxRangeAllocator.OpenMedium(medium, DeviceSize, Align, Path);
        AssertValidTable(reopened.Ranges);
        foreach (string entry in found.Where(f => f != "fuzz-new"))
        {
            Assert.Contains(entry, Describe(reopened.Ranges));
        }
        Assert.Equal(found.Length, reopened.Ranges.Count);
        return found.SequenceEqual(newer) || found.SequenceEqual([.. newer, "fuzz-new"]) ? "opened" : "opened-other";
    }

    private static void AssertValidTable(IReadOnlyList<DaxAllocation> ranges)
    {
        long area = DaxRangeAllocator.LabelAreaLengthFor(Align);
        long previousEnd = area;
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (DaxAllocation r in ranges)
        {
            Assert.True(PageSizes.IsDefined(r.PageSize) && r.PageSize >= Align, $"{r}: page size");
            Assert.True(r.Offset >= previousEnd && r.Length > 0 && r.End <= DeviceSize, $"{r}: bounds or order");
            Assert.True(r.Offset % (long)r.PageSize == 0 && r.Length % (long)r.PageSize == 0, $"{r}: alignment");
            Assert.True(names.Add(r.Name), $"{r}: duplicate name");
            Assert.InRange(System.Text.Encoding.UTF8.GetByteCount(r.Name), 1, 32);
            previousEnd = r.End;
        }
    }

    [Fact]
    public void FuzzedEmulatedDeviceDescriptorsParseAsValidGeometryOrATypedError()
    {
        const long Trailer = 4096;
        Span<byte> valid = stackalloc byte[DaxDevice.DescriptorLength];
        DaxDevice.WriteDescriptor(valid, 8L << 20, PageSize.Pmd, Trailer);
        Span<byte> d = stackalloc byte[DaxDevice.DescriptorLength];
        var random = new Random(Seed + 1);
        var rules = new Dictionary<string, int>();
        int cases = Cases;
        for (int c = 0; c < cases; c++)
        {
            valid.CopyTo(d);
            bool rewrite = random.Next(2) == 0;
            string what;
            if (rewrite)
            {
                int field = random.Next(6);
                long value = random.Next(3) == 0 ? random.NextInt64(long.MinValue, long.MaxValue) : s_interesting[random.Next(s_interesting.Length)];
                int at = field switch { 0 => 8, 1 => 12, 2 => 16, 3 => 24, 4 => 32, _ => 40 + 8 * random.Next(2) };
                if (at is 8 or 12)
                {
                    BinaryPrimitives.WriteUInt32LittleEndian(d[at..], (uint)value);
                }
                else
                {
                    BinaryPrimitives.WriteInt64LittleEndian(d[at..], value);
                }
                BinaryPrimitives.WriteUInt64LittleEndian(d[56..], XxHash3.HashToUInt64(d[..56]));
                what = $"field at {at} := {value} (checksum recomputed)";
            }
            else
            {
                int at = random.Next(DaxDevice.DescriptorLength);
                d[at] ^= (byte)(1 + random.Next(255));
                what = $"byte {at} changed";
            }
            string key;
            try
            {
                (long size, PageSize align) = DaxDevice.ParseDescriptor(d, Path, Trailer);
                Assert.True(PageSizes.IsDefined(align), what);
                Assert.True(size > 0 && size % (long)align == 0, what);
                Assert.True(d[40..56].IndexOfAnyExcept((byte)0) < 0, $"case {c}: reserved bytes accepted ({what})");
                Assert.True(rewrite, $"case {c}: raw damage ({what}) passed the checksum");
                key = "valid";
            }
            catch (DaxConfigurationException e)
            {
                key = e.Rule.ToString();
                Assert.Contains(Path, e.Message, StringComparison.Ordinal);
            }
            catch (Exception e)
            {
                throw new InvalidOperationException($"case {c} (seed {Seed + 1}, {what}): {e.GetType().Name}: {e.Message}", e);
            }
            rules[key] = rules.GetValueOrDefault(key) + 1;
        }
        output.WriteLine($"{cases} descriptor cases (seed {Seed + 1}): " + string.Join(", ", rules.OrderBy(o => o.Key, StringComparer.Ordinal).Select(o => $"{o.Key}={o.Value}")));
        Assert.Contains("valid", rules.Keys);
        Assert.Contains(DaxConfigurationRule.BadDescriptor.ToString(), rules.Keys);
        Assert.True(rules.Count >= 4, string.Join(", ", rules.Select(r => $"{r.Key}={r.Value}")));
    }

    [Fact]
    public void FuzzedDescriptorsOnDiskOpenAsTheirGeometryOrATypedError()
    {
        using var temp = new TempDirectory();
        string path = temp.File("fuzz.emu");
        const long Size = 4L << 20;
        using (DaxDevice.CreateEmulated(path, Size, PageSize.Pmd))
        {
        }
        byte[] original = File.ReadAllBytes(path);
        var random = new Random(Seed + 2);
        int cases = Math.Max(50, Cases / 50);
        for (int c = 0; c < cases; c++)
        {
            byte[] bytes = (byte[])original.Clone();
            Span<byte> d = bytes.AsSpan((int)Size, DaxDevice.DescriptorLength);
            long value = s_interesting[random.Next(s_interesting.Length)];
            int at = 8 * (1 + random.Next(5));
            BinaryPrimitives.WriteInt64LittleEndian(d[at..], value);
            if (random.Next(4) != 0)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(d[56..], XxHash3.HashToUInt64(d[..56]));
            }
            File.WriteAllBytes(path, bytes);
            try
            {
                using DaxDevice dax = DaxDevice.OpenEmulated(path);
                // Only a descriptor that still describes this very file opens.
                Assert.Equal(Size, dax.Size);
                using DaxMapping map = dax.Map(new DaxMappingOptions { ReadOnly = true });
                Assert.Equal(Size, map.Length);
            }
            catch (DaxConfigurationException e)
            {
                Assert.Contains(path, e.Message, StringComparison.Ordinal);
            }
        }
    }
}
