using DirectPmem.Geometry;
using Xunit;

namespace DirectPmem.Tests.Geometry;

public class BadBlockMathTests
{
    private const long Gib1 = 1L << 30;

    [Fact]
    public void LinesAreReadAsByteRangesInSectorUnits()
    {
        var ranges = new List<PmemRange>();
        Assert.Null(BadBlockMath.TryParse("0 1\n2097144 8\n", Gib1, ranges));
        Assert.Equal([new PmemRange(0, 512), new PmemRange(Gib1 - 4096, 4096)], ranges);
    }

    [Theory]
    [InlineData("")]
    [InlineData("\n\n")]
    [InlineData("   \n")]
    public void AnEmptyListIsValidAndEmpty(string text)
    {
        var ranges = new List<PmemRange>();
        Assert.Null(BadBlockMath.TryParse(text, Gib1, ranges));
        Assert.Empty(ranges);
    }

    [Theory]
    [InlineData("12")]
    [InlineData("a 8")]
    [InlineData("8 b")]
    [InlineData("-1 8")]
    [InlineData("+1 8")]
    [InlineData("1 8 9")]
    [InlineData("0x10 8")]
    [InlineData("0 0")]
    [InlineData("2097152 1")]
    [InlineData("2097150 8")]
    [InlineData("18446744073709551615 1")]
    [InlineData("1 18446744073709551615")]
    [InlineData("18446744073709551616 1")]
    [InlineData("1,5 8")]
    [InlineData("\u0661 8")]
    public void AMalformedOrOutOfBoundsLineIsAProblemAndNothingIsKept(string bad)
    {
        var ranges = new List<PmemRange> { new(1, 1) };
        string? problem = BadBlockMath.TryParse("8 8\n" + bad + "\n16 8", Gib1, ranges);
        Assert.NotNull(problem);
        Assert.Contains("line 2", problem, StringComparison.Ordinal);
        Assert.Equal([new PmemRange(1, 1)], ranges); // what was there before stays; nothing of the bad text is added
    }

    [Fact]
    public void RandomGarbageNeverThrowsAndNeverYieldsARangeOutsideTheLimit()
    {
        var random = new Random(19);
        const string Alphabet = "0123456789 \n\t-x";
        for (int round = 0; round < 5000; round++)
        {
            char[] text = new char[random.Next(0, 60)];
            for (int i = 0; i < text.Length; i++)
            {
                text[i] = Alphabet[random.Next(Alphabet.Length)];
            }
            long limit = random.Next(0, 4) switch { 0 => 0, 1 => 512, 2 => 1 << 20, _ => long.MaxValue };
            var ranges = new List<PmemRange>();
            string? problem = BadBlockMath.TryParse(new string(text), limit, ranges);
            if (problem is not null)
            {
                Assert.Empty(ranges);
            }
            Assert.All(ranges, r => Assert.True(r.Offset >= 0 && r.Length > 0 && r.End <= limit, $"{r} outside {limit}"));
        }
    }

    [Fact]
    public void ARangeInsideOnePlacedRangeMovesByItsOffset()
    {
        // A region at physical 0x100000000; the device's bytes from 0 sit at 0x100a00000.
        List<PmemRange> result = BadBlockMath.ToSourceOffsets([new PmemRange(0xc00000, 4096)], 0x100000000,
            [new PlacedRange(0x100a00000, 0x1f600000, 0)]);
        Assert.Equal([new PmemRange(0x200000, 4096)], result);
    }

    [Fact]
    public void ARangeOutsideEveryPlacedRangeIsNotTheSources()
    {
        Assert.Empty(BadBlockMath.ToSourceOffsets([new PmemRange(0x100000, 4096)], 0x100000000, [new PlacedRange(0x100a00000, 0x1f600000, 0)]));
        Assert.Empty(BadBlockMath.ToSourceOffsets([new PmemRange(0x100000, 4096)], 0, []));
    }

    [Fact]
    public void ARangeStraddlingTheStartOfAPlacedRangeKeepsOnlyTheInsidePart()
    {
        List<PmemRange> result = BadBlockMath.ToSourceOffsets([new PmemRange(0x9ff000, 0x2000)], 0x100000000,
            [new PlacedRange(0x100a00000, 0x1f600000, 0)]);
        Assert.Equal([new PmemRange(0, 0x1000)], result);
    }

    [Fact]
    public void ARangeCrossingAPhysicalBoundaryBetweenTwoRangesSplitsIntoTheirDeviceOffsets()
    {
        // mapping1 (device offset 256 MiB) ends physically where mapping0 (device offset 0) begins.
        PlacedRange[] placed = [new PlacedRange(0x150400000, 0x10000000, 0), new PlacedRange(0x140400000, 0x10000000, 0x10000000)];
        List<PmemRange> result = BadBlockMath.ToSourceOffsets([new PmemRange(0x103ff000, 0x2000)], 0x140000000, placed);
        Assert.Equal([new PmemRange(0, 0x1000), new PmemRange(0x1ffff000, 0x1000)], result);
    }

    [Fact]
    public void PiecesThatTouchInSourceOffsetsAreMerged()
    {
        // Two extents adjacent in the file but apart on the device, both wholly bad.
        PlacedRange[] placed = [new PlacedRange(0x10000, 0x1000, 0), new PlacedRange(0x50000, 0x1000, 0x1000)];
        List<PmemRange> result = BadBlockMath.ToSourceOffsets([new PmemRange(0x10000, 0x1000), new PmemRange(0x50000, 0x1000)], 0, placed);
        Assert.Equal([new PmemRange(0, 0x2000)], result);
    }

    [Fact]
    public void OffsetsNearTheTopOfTheAddressSpaceDoNotOverflow()
    {
        PlacedRange[] placed = [new PlacedRange(ulong.MaxValue - 0xfff, 0x1000, 0)];
        // Ends are clamped to the last address: the bad range starts 0x7ff into the placed one.
        List<PmemRange> result = BadBlockMath.ToSourceOffsets([new PmemRange(0x800, long.MaxValue - 0x800)], ulong.MaxValue - 0x1000, placed);
        Assert.Equal([new PmemRange(0x7ff, 0x800)], result);
        Assert.Empty(BadBlockMath.ToSourceOffsets([new PmemRange(long.MaxValue - 1, 1)], ulong.MaxValue - 10, placed));
    }

    [Fact]
    public void APlacedRangeWithANegativeOrOverflowingOffsetIsIgnored()
    {
        PlacedRange[] placed = [new PlacedRange(0, 0x1000, -1), new PlacedRange(0, 0x1000, long.MaxValue - 10), new PlacedRange(0, 0, 0)];
        Assert.Empty(BadBlockMath.ToSourceOffsets([new PmemRange(0, 0x1000)], 0, placed));
    }

    [Theory]
    [InlineData(0, 0x3000, 0x1000, 0x1000, 0x1000, 0x1000)]
    [InlineData(0x1000, 0x1000, 0x1000, 0x1000, 0, 0x1000)]
    [InlineData(0x1800, 0x10000, 0x1000, 0x1000, 0, 0x800)]
    public void AWindowCutsAndRebases(long windowOffset, long windowLength, long badOffset, long badLength, long expectedOffset, long expectedLength)
    {
        Assert.Equal([new PmemRange(expectedOffset, expectedLength)], BadBlockMath.Window([new PmemRange(badOffset, badLength)], windowOffset, windowLength));
    }

    [Fact]
    public void AWindowMissingEveryRangeIsEmpty()
    {
        Assert.Empty(BadBlockMath.Window([new PmemRange(0x1000, 0x1000)], 0x2000, 0x1000));
        Assert.Empty(BadBlockMath.Window([new PmemRange(0x1000, 0x1000)], 0, 0x1000));
    }
}
