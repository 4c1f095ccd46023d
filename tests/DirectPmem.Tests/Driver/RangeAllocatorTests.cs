using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Tests.Fixtures;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Driver;

public sealed class RangeAllocatorTests : IDisposable
{
    private const long Mib2 = 2 * 1024 * 1024;
    private const long Size = 16 * Mib2;
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private string DevicePath => _temp.File("labels.emu");

    private DaxDevice CreateDevice(long size = Size, PageSize align = PageSize.Pmd) => DaxDevice.CreateEmulated(DevicePath, size, align);

    [Fact]
    public void OpeningAnUnformattedDeviceSaysSo()
    {
        using DaxDevice dax = CreateDevice();
        var error = Assert.Throws<DaxLabelException>(() => DaxRangeAllocator.Open(dax));
        Assert.Equal(DaxLabelRule.NotFormatted, error.Rule);
        Assert.Equal(-1, error.Slot);
    }

    [Fact]
    public void OneAllocatorAtATimeOwnsTheLabels()
    {
        using DaxDevice dax = CreateDevice();
        DaxRangeAllocator first = DaxRangeAllocator.Format(dax);
        Assert.Throws<PmemInUseException>(() => DaxRangeAllocator.Open(dax));
        Assert.Throws<PmemInUseException>(() => DaxRangeAllocator.Format(dax));
        first.Allocate("a", Mib2);
        first.Dispose();
        Assert.Throws<ObjectDisposedException>(() => first.Allocate("b", Mib2));
        Assert.Throws<ObjectDisposedException>(() => first.Map("a"));
        Assert.Throws<ObjectDisposedException>(() => first.Free("a"));
        using DaxRangeAllocator second = DaxRangeAllocator.Open(dax);
        Assert.Equal("a", Assert.Single(second.Ranges).Name);
    }

    [Fact]
    public void FormattingTwiceIsRefused()
    {
        using DaxDevice dax = CreateDevice();
        DaxRangeAllocator.Format(dax).Dispose();
        Assert.Equal(DaxLabelRule.AlreadyFormatted, Assert.Throws<DaxLabelException>(() => DaxRangeAllocator.Format(dax)).Rule);
    }

    [Fact]
    public void LabelAreaIsTwoSlotsRoundedUpToTheAlign()
    {
        Assert.Equal(8192, DaxRangeAllocator.LabelAreaLengthFor(PageSize.Pte));
        Assert.Equal(Mib2, DaxRangeAllocator.LabelAreaLengthFor(PageSize.Pmd));
        Assert.Equal(1L << 30, DaxRangeAllocator.LabelAreaLengthFor(PageSize.Pud));
    }

    [Fact]
    public void LargestFreeLengthIsTheLongestRangeAllocateCanStillGiveNotTheSumOfTheGaps()
    {
        using DaxDevice dax = CreateDevice();
        using DaxRangeAllocator labels = DaxRangeAllocator.Format(dax);
        Assert.Equal(Size - Mib2, labels.LargestFreeLength);
        // [2, 6) MiB taken, a 4 MiB gap [6, 10), [10, 24) taken, a 8 MiB gap [24, 32): 12 MiB free, 8 MiB the longest.
        labels.AllocateAt("a", Mib2, 2 * Mib2);
        labels.AllocateAt("b", 5 * Mib2, 7 * Mib2);
        Assert.Equal(4 * Mib2, labels.LargestFreeLength);
        Assert.Equal(DaxLabelRule.Full, Assert.Throws<DaxLabelException>(() => labels.Allocate("too-long", labels.LargestFreeLength + Mib2)).Rule);
        Assert.Equal(12 * Mib2, labels.Allocate("fits", labels.LargestFreeLength).Offset);
        Assert.Equal(2 * Mib2, labels.LargestFreeLength);
        labels.Allocate("rest", 2 * Mib2);
        Assert.Equal(0, labels.LargestFreeLength);
    }

    [Fact]
    public void AllocatingUntilTheDeviceIsFullThenFreeingMakesRoomAgain()
    {
        using DaxDevice dax = CreateDevice();
        using DaxRangeAllocator labels = DaxRangeAllocator.Format(dax);
        int count = 0;
        while (true)
        {
            try
            {
                labels.Allocate($"r{count}", Mib2);
                count++;
            }
            catch (DaxLabelException e) when (e.Rule == DaxLabelRule.Full)
            {
                break;
            }
        }
        Assert.Equal((Size - Mib2) / Mib2, count);
        Assert.Equal(Enumerable.Range(0, count).Select(i => Mib2 + i * Mib2), labels.Ranges.Select(r => r.Offset));

        labels.Free("r3");
        DaxAllocation reused = labels.Allocate("again", Mib2);
        Assert.Equal(Mib2 + 3 * Mib2, reused.Offset);
        Assert.Equal(DaxLabelRule.Full, Assert.Throws<DaxLabelException>(() => labels.Allocate("more", Mib2)).Rule);
    }

    [Fact]
    public void TheTableHoldsAtMostMaxRangesEntries()
    {
        using DaxDevice dax = CreateDevice(size: 128 * 4096, align: PageSize.Pte);
        using DaxRangeAllocator labels = DaxRangeAllocator.Format(dax);
        for (int i = 0; i < DaxRangeAllocator.MaxRanges; i++)
        {
            labels.Allocate("entry-" + i, 4096);
        }
        var error = Assert.Throws<DaxLabelException>(() => labels.Allocate("one-too-many", 4096));
        Assert.Equal(DaxLabelRule.Full, error.Rule);
        labels.Dispose();
        using DaxRangeAllocator reopened = DaxRangeAllocator.Open(dax);
        Assert.Equal(DaxRangeAllocator.MaxRanges, reopened.Ranges.Count);
    }

    [Fact]
    public void ReopeningFindsTheSameTable()
    {
        DaxAllocation[] before;
        ulong sequence;
        using (DaxDevice dax = CreateDevice(size: 64 * Mib2, align: PageSize.Pte))
        using (DaxRangeAllocator labels = DaxRangeAllocator.Format(dax))
        {
            labels.Allocate("small", 4 * 4096);
            labels.Allocate("huge", 4 * Mib2, PageSize.Pmd);
            labels.AllocateAt("pinned", 40 * Mib2, Mib2, PageSize.Pmd);
            labels.Allocate("temp", 4096);
            labels.Free("temp");
            before = labels.Ranges.ToArray();
            sequence = labels.Sequence;
        }
        using DaxDevice again = DaxDevice.OpenEmulated(DevicePath);
        using DaxRangeAllocator reopened = DaxRangeAllocator.Open(again);
        Assert.Equal(before, reopened.Ranges);
        Assert.Equal(sequence, reopened.Sequence);
        Assert.Equal(6UL, sequence);
        Assert.Equal(new DaxAllocation("huge", Mib2, 4 * Mib2, PageSize.Pmd), reopened.Get("huge"));
        Assert.Equal(["small", "huge", "pinned"], reopened.Ranges.Select(r => r.Name));
    }

    [Theory]
    [InlineData(3 * Mib2, Mib2, DaxLabelRule.Overlap)]          // inside "a" [2M, 6M)
    [InlineData(Mib2, 2 * Mib2, DaxLabelRule.Overlap)]          // straddles the start of "a"
    [InlineData(5 * Mib2, 2 * Mib2, DaxLabelRule.Overlap)]      // straddles the end of "a"
    [InlineData(6 * Mib2 + 4096, Mib2, DaxLabelRule.Unaligned)]
    [InlineData(6 * Mib2, Mib2 + 4096, DaxLabelRule.Unaligned)]
    [InlineData(0L, Mib2, DaxLabelRule.OutOfBounds)]            // the label area
    [InlineData(Size - Mib2, 2 * Mib2, DaxLabelRule.OutOfBounds)]
    [InlineData(Size, Mib2, DaxLabelRule.OutOfBounds)]
    [InlineData(6 * Mib2, 0L, DaxLabelRule.OutOfBounds)]
    public void OverlappingMisalignedOrOutOfBoundsRequestsAreRefused(long offset, long length, DaxLabelRule rule)
    {
        using DaxDevice dax = CreateDevice();
        using DaxRangeAllocator labels = DaxRangeAllocator.Format(dax);
        labels.AllocateAt("a", 2 * Mib2, 4 * Mib2);
        var error = Assert.Throws<DaxLabelException>(() => labels.AllocateAt("b", offset, length));
        Assert.Equal(rule, error.Rule);
        Assert.Equal(-1, error.Slot);
        Assert.Single(labels.Ranges);
        Assert.Equal(2UL, labels.Sequence);
    }

    [Fact]
    public void BadNamesPageSizesAndLengthsAreRefused()
    {
        using DaxDevice dax = CreateDevice();
        using DaxRangeAllocator labels = DaxRangeAllocator.Format(dax);
        labels.Allocate("taken", Mib2);
        Assert.Equal(DaxLabelRule.DuplicateName, Assert.Throws<DaxLabelException>(() => labels.Allocate("taken", Mib2)).Rule);
        Assert.Equal(DaxLabelRule.BadName, Assert.Throws<DaxLabelException>(() => labels.Allocate("", Mib2)).Rule);
        Assert.Equal(DaxLabelRule.BadName, Assert.Throws<DaxLabelException>(() => labels.Allocate(new string('x', 33), Mib2)).Rule);
        Assert.Equal(DaxLabelRule.BadName, Assert.Throws<DaxLabelException>(() => labels.Allocate("nul\0", Mib2)).Rule);
        Assert.Equal(DaxLabelRule.BadPageSize, Assert.Throws<DaxLabelException>(() => labels.Allocate("small", 4096, PageSize.Pte)).Rule);
        Assert.Equal(DaxLabelRule.Unaligned, Assert.Throws<DaxLabelException>(() => labels.Allocate("odd", Mib2 + 4096)).Rule);
        Assert.Equal(DaxLabelRule.NoSuchRange, Assert.Throws<DaxLabelException>(() => labels.Free("absent")).Rule);
        Assert.Equal(DaxLabelRule.NoSuchRange, Assert.Throws<DaxLabelException>(() => labels.Map("absent")).Rule);
        DaxAllocation full32 = labels.Allocate(new string('y', 32), Mib2);
        Assert.Equal(32, full32.Name.Length);
    }

    [Fact]
    public void AChildRangeMapsExactlyLikeADevice()
    {
        using DaxDevice dax = CreateDevice(size: 16 * Mib2, align: PageSize.Pte);
        using DaxRangeAllocator labels = DaxRangeAllocator.Format(dax);
        labels.Allocate("pte", 3 * 4096);
        DaxAllocation huge = labels.Allocate("pmd", 4 * Mib2, PageSize.Pmd);
        Assert.Equal(Mib2, huge.Offset);

        using DaxMapping child = labels.Map("pmd", new DaxMappingOptions { Offset = Mib2, Length = Mib2 });
        Assert.Equal(PageSize.Pmd, child.PageSize);
        Assert.Equal(0, child.AddressOf() % Mib2);
        Assert.Equal(huge.Offset + Mib2, child.SourceOffset);
        child.GetRef<long>(8) = 42;
        child.Persist(8, 8);
        // The device's own mapping starts after the label area now that the device holds a table.
        using DaxMapping whole = dax.Map();
        Assert.Equal(labels.LabelAreaLength, whole.SourceOffset);
        Assert.Equal(42, whole.GetReadOnlyRef<long>(huge.Offset + Mib2 + 8 - whole.SourceOffset));

        Assert.Equal("Offset", Assert.Throws<ArgumentException>(() => labels.Map("pmd", new DaxMappingOptions { Offset = 4096, Length = Mib2 })).ParamName);
        Assert.Throws<ArgumentException>(() => labels.Map("pmd", new DaxMappingOptions { PageSize = PageSize.Pte }));
        Assert.Throws<ArgumentOutOfRangeException>(() => labels.Map("pmd", new DaxMappingOptions { Offset = 3 * Mib2, Length = 2 * Mib2 }));
        using DaxMapping all = labels.Map("pmd");
        Assert.Equal(4 * Mib2, all.Length);
        Assert.Throws<PmemCapabilityException>(() => labels.Map("pmd", new DaxMappingOptions { RequirePageSize = true }));
    }

    [Fact]
    public void EveryFlippedByteOfEitherPublishedSlotIsDetectedWithTheSlotNamed()
    {
        using DaxDevice dax = CreateDevice();
        using (DaxRangeAllocator labels = DaxRangeAllocator.Format(dax))
        {
            labels.Allocate("a", Mib2);
            labels.Allocate("b", 2 * Mib2, PageSize.Pmd);
        }
        // Both slots are now published (sequences 2 and 3).
        using DaxMapping raw = dax.MapRaw(new DaxMappingOptions { Length = Mib2 });
        var rules = new HashSet<DaxLabelRule>();
        for (int slot = 0; slot < 2; slot++)
        {
            for (int i = 0; i < 4096; i++)
            {
                Span<byte> bytes = raw.GetSpan(slot * 4096 + i, 1);
                bytes[0] ^= 0xFF;
                var error = Assert.Throws<DaxLabelException>(() => DaxRangeAllocator.Open(dax).Dispose());
                Assert.Equal(slot, error.Slot);
                rules.Add(error.Rule);
                bytes[0] ^= 0xFF;
            }
        }
        Assert.Contains(DaxLabelRule.BadCommit, rules);
        Assert.Contains(DaxLabelRule.BadMagic, rules);
        Assert.Contains(DaxLabelRule.BadChecksum, rules);
        using DaxRangeAllocator intact = DaxRangeAllocator.Open(dax);
        Assert.Equal(["a", "b"], intact.Ranges.Select(r => r.Name));
    }

    [Fact]
    public void ASlotWithAValidChecksumButBrokenRulesIsReportedByRule()
    {
        using DaxDevice dax = CreateDevice();
        DaxRangeAllocator.Format(dax).Dispose();
        using DaxMapping raw = dax.MapRaw(new DaxMappingOptions { Length = Mib2 });
        // Format published slot 0 (sequence 1). Publish slot 1 too, with overlapping entries and a correct checksum.
        var overlapping = new[] { new DaxAllocation("x", Mib2, 4 * Mib2, PageSize.Pmd), new DaxAllocation("y", 2 * Mib2, Mib2, PageSize.Pmd) };
        LabelSlot.Encode(raw.GetSpan(4096, 4096), 1, 1, Size, PageSize.Pmd, overlapping);
        Assert.Equal(DaxLabelRule.Overlap, Assert.Throws<DaxLabelException>(() => DaxRangeAllocator.Open(dax)).Rule);

        var duplicate = new[] { new DaxAllocation("x", Mib2, Mib2, PageSize.Pmd), new DaxAllocation("x", 2 * Mib2, Mib2, PageSize.Pmd) };
        LabelSlot.Encode(raw.GetSpan(4096, 4096), 1, 1, Size, PageSize.Pmd, duplicate);
        Assert.Equal(DaxLabelRule.DuplicateName, Assert.Throws<DaxLabelException>(() => DaxRangeAllocator.Open(dax)).Rule);

        var outside = new[] { new DaxAllocation("x", Size, Mib2, PageSize.Pmd) };
        LabelSlot.Encode(raw.GetSpan(4096, 4096), 1, 1, Size, PageSize.Pmd, outside);
        Assert.Equal(DaxLabelRule.OutOfBounds, Assert.Throws<DaxLabelException>(() => DaxRangeAllocator.Open(dax)).Rule);

        LabelSlot.Encode(raw.GetSpan(4096, 4096), 0, 1, Size, PageSize.Pmd, []);
        var wrongSlot = Assert.Throws<DaxLabelException>(() => DaxRangeAllocator.Open(dax));
        Assert.Equal(DaxLabelRule.WrongDevice, wrongSlot.Rule);
        Assert.Equal(1, wrongSlot.Slot);

        LabelSlot.Encode(raw.GetSpan(4096, 4096), 1, 1, Size * 2, PageSize.Pmd, []);
        Assert.Equal(DaxLabelRule.WrongDevice, Assert.Throws<DaxLabelException>(() => DaxRangeAllocator.Open(dax)).Rule);

        // Both slots published with sequence 1.
        LabelSlot.Encode(raw.GetSpan(4096, 4096), 1, 1, Size, PageSize.Pmd, []);
        Assert.Equal(DaxLabelRule.SequenceConflict, Assert.Throws<DaxLabelException>(() => DaxRangeAllocator.Open(dax)).Rule);
    }

    [Fact]
    public void ATornFirstFormatLeavesTheDeviceUnformatted()
    {
        using DaxDevice dax = CreateDevice();
        using DaxMapping raw = dax.MapRaw(new DaxMappingOptions { Length = Mib2 });
        Span<byte> image = new byte[4096];
        LabelSlot.Encode(image, 1, 1, Size, PageSize.Pmd, []);
        // Half of the new slot reached the media, but the publish word never did.
        image[8..2048].CopyTo(raw.GetSpan(4096 + 8, 2040));
        Assert.Equal(DaxLabelRule.NotFormatted, Assert.Throws<DaxLabelException>(() => DaxRangeAllocator.Open(dax)).Rule);
        using DaxRangeAllocator formatted = DaxRangeAllocator.Format(dax);
        Assert.Empty(formatted.Ranges);
    }
}
