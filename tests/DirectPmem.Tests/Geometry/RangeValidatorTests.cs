using DirectPmem.Geometry;
using Xunit;

namespace DirectPmem.Tests.Geometry;

public class RangeValidatorTests
{
    private const long Mib2 = 2 * 1024 * 1024;
    private const long Gib1 = 1024L * 1024 * 1024;

    [Theory]
    [InlineData(4096L, true)]
    [InlineData(2097152L, true)]
    [InlineData(1073741824L, true)]
    [InlineData(0L, false)]
    [InlineData(4095L, false)]
    [InlineData(4097L, false)]
    [InlineData(8192L, false)]
    [InlineData(2097151L, false)]
    [InlineData(2097153L, false)]
    [InlineData(-4096L, false)]
    [InlineData(long.MaxValue, false)]
    public void TryFromBytesAcceptsExactlyTheThreeX86PageSizes(long bytes, bool expected)
    {
        Assert.Equal(expected, PageSizes.TryFromBytes(bytes, out PageSize pageSize));
        if (expected)
        {
            Assert.Equal(bytes, pageSize.ToBytes());
        }
    }

    [Fact]
    public void FromBytesNamesTheParameterAndValue()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => PageSizes.FromBytes(65536, "align"));
        Assert.Equal("align", e.ParamName);
        Assert.Equal(65536L, e.ActualValue);
    }

    [Theory]
    [InlineData(PageSize.Pte, 12, "4 KiB")]
    [InlineData(PageSize.Pmd, 21, "2 MiB")]
    [InlineData(PageSize.Pud, 30, "1 GiB")]
    public void ShiftAndDisplayMatchTheSize(PageSize pageSize, int shift, string display)
    {
        Assert.Equal(shift, pageSize.Shift());
        Assert.Equal(1L << shift, pageSize.ToBytes());
        Assert.Equal(display, pageSize.ToDisplayString());
    }

    [Theory]
    [InlineData(0L, true)]
    [InlineData(4095L, false)]
    [InlineData(4096L, true)]
    [InlineData(4097L, false)]
    [InlineData(Mib2 - 1, false)]
    [InlineData(Mib2, true)]
    [InlineData(Mib2 + 1, false)]
    [InlineData(Mib2 + 4096, true)]
    public void IsAlignedToPte(long value, bool expected) => Assert.Equal(expected, RangeValidator.IsAligned(value, PageSize.Pte));

    [Theory]
    [InlineData(0L, true)]
    [InlineData(4096L, false)]
    [InlineData(Mib2 - 1, false)]
    [InlineData(Mib2, true)]
    [InlineData(Mib2 + 1, false)]
    [InlineData(Mib2 + 4096, false)]
    [InlineData(2 * Mib2, true)]
    public void IsAlignedToPmd(long value, bool expected) => Assert.Equal(expected, RangeValidator.IsAligned(value, PageSize.Pmd));

    [Theory]
    [InlineData(4095L, "offset")]
    [InlineData(4097L, "offset")]
    [InlineData(Mib2 - 1, "offset")]
    [InlineData(Mib2 + 1, "offset")]
    [InlineData(4096L, "offset")]
    public void ValidateMapRangeRefusesOffsetNotAlignedToPmd(long offset, string param)
    {
        var e = Assert.Throws<ArgumentException>(() => RangeValidator.ValidateMapRange(offset, Mib2, PageSize.Pmd, 16 * Mib2));
        Assert.Equal(param, e.ParamName);
        Assert.Contains("2 MiB", e.Message, StringComparison.Ordinal);
        Assert.Contains($"0x{offset:x}", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(4095L)]
    [InlineData(4097L)]
    [InlineData(Mib2 - 1)]
    [InlineData(Mib2 + 1)]
    [InlineData(Mib2 + 4096)]
    public void ValidateMapRangeRefusesLengthNotAlignedToPmd(long length)
    {
        var e = Assert.Throws<ArgumentException>(() => RangeValidator.ValidateMapRange(0, length, PageSize.Pmd, 16 * Mib2));
        Assert.Equal("length", e.ParamName);
    }

    [Theory]
    [InlineData(4095L)]
    [InlineData(4097L)]
    public void ValidateMapRangeRefusesLengthNotAlignedToPte(long length)
    {
        var e = Assert.Throws<ArgumentException>(() => RangeValidator.ValidateMapRange(0, length, PageSize.Pte, Mib2));
        Assert.Equal("length", e.ParamName);
        Assert.Contains("4096", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0L, 4096L)]
    [InlineData(4096L, 4096L)]
    [InlineData(0L, Mib2)]
    [InlineData(Mib2 - 4096, 4096L)]
    public void ValidateMapRangeAcceptsAlignedRangesWithinTheLimit(long offset, long length)
        => RangeValidator.ValidateMapRange(offset, length, PageSize.Pte, Mib2);

    [Theory]
    [InlineData(0L, Mib2 + 4096)]
    [InlineData(Mib2, 4096L)]
    [InlineData(Mib2 - 4096, 8192L)]
    [InlineData(4 * Mib2, 4096L)]
    public void ValidateMapRangeRefusesRangesPastTheLimit(long offset, long length)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => RangeValidator.ValidateMapRange(offset, length, PageSize.Pte, Mib2, "'dev'"));
        Assert.Equal("length", e.ParamName);
        Assert.Contains("SIGBUS", e.Message, StringComparison.Ordinal);
        Assert.Contains("'dev'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ValidateMapRangeRefusesEmptyLength()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => RangeValidator.ValidateMapRange(0, 0, PageSize.Pte, Mib2));
        Assert.Equal("length", e.ParamName);
        Assert.Equal(0L, e.ActualValue);
    }

    [Theory]
    [InlineData(-4096L, 4096L, "offset")]
    [InlineData(long.MinValue, 4096L, "offset")]
    [InlineData(0L, -4096L, "length")]
    [InlineData(0L, long.MinValue, "length")]
    public void ValidateMapRangeRefusesNegativeValues(long offset, long length, string param)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => RangeValidator.ValidateMapRange(offset, length, PageSize.Pte, Mib2));
        Assert.Equal(param, e.ParamName);
    }

    [Theory]
    [InlineData(long.MaxValue - 4095, 4096L)]
    [InlineData(4096L, long.MaxValue - 4095)]
    [InlineData(long.MaxValue / 2 + 1, long.MaxValue / 2 + 1)]
    public void ValidateNonEmptyRefusesEndsThatOverflow(long offset, long length)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => RangeValidator.ValidateNonEmpty(offset, length));
        Assert.Equal("length", e.ParamName);
        Assert.Contains("overflow", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ValidateMapRangeWithHugeLimitStillRefusesOverflow()
    {
        long offset = RangeValidator.AlignDown(long.MaxValue, 4096);
        Assert.Throws<ArgumentOutOfRangeException>(() => RangeValidator.ValidateMapRange(offset, 4096, PageSize.Pte, long.MaxValue));
    }

    [Fact]
    public void ValidateMapRangeRefusesUndefinedPageSize()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => RangeValidator.ValidateMapRange(0, 8192, (PageSize)8192, Mib2));
        Assert.Equal("pageSize", e.ParamName);
    }

    [Theory]
    [InlineData(0L, 4096L, 0L)]
    [InlineData(1L, 4096L, 4096L)]
    [InlineData(4096L, 4096L, 4096L)]
    [InlineData(4097L, 4096L, 8192L)]
    [InlineData(Mib2 - 1, Mib2, Mib2)]
    [InlineData(Mib2 + 1, Mib2, 2 * Mib2)]
    [InlineData(Gib1 + 1, Gib1, 2 * Gib1)]
    public void AlignUpRoundsToTheNextMultiple(long value, long alignment, long expected)
    {
        Assert.Equal(expected, RangeValidator.AlignUp(value, alignment));
        Assert.Equal(expected == value ? value : expected - alignment, RangeValidator.AlignDown(value, alignment));
    }

    [Fact]
    public void AlignUpThrowsOnOverflow() => Assert.Throws<OverflowException>(() => RangeValidator.AlignUp(long.MaxValue - 10, 4096));

    [Theory]
    [InlineData(long.MaxValue, 4096)]
    [InlineData(long.MaxValue - 4094, 4096)]
    [InlineData(long.MaxValue - 2097150, 2097152)]
    public void TryAlignUpSaysSoWhenTheMultipleAbovePassesLongMaxValue(long value, long alignment)
    {
        Assert.False(RangeValidator.TryAlignUp(value, alignment, out long aligned));
        Assert.Equal(0, aligned);
    }

    [Theory]
    [InlineData(0, 4096, 0)]
    [InlineData(1, 4096, 4096)]
    [InlineData(long.MaxValue - 4095, 4096, long.MaxValue - 4095)]
    [InlineData(long.MaxValue - 8190, 4096, long.MaxValue - 4095)]
    public void TryAlignUpRoundsUpWhenItFits(long value, long alignment, long expected)
    {
        Assert.True(RangeValidator.TryAlignUp(value, alignment, out long aligned));
        Assert.Equal(expected, aligned);
    }

    [Fact]
    public void RangesOverlapOnlyWhenTheyShareAByte()
    {
        var a = new PmemRange(0, Mib2);
        Assert.True(a.Overlaps(new PmemRange(Mib2 - 1, 1)));
        Assert.False(a.Overlaps(new PmemRange(Mib2, 1)));
        Assert.True(a.Contains(new PmemRange(4096, 4096)));
        Assert.False(a.Contains(new PmemRange(Mib2 - 4096, 8192)));
        Assert.True(a.IsAlignedTo(PageSize.Pmd));
        Assert.False(new PmemRange(4096, Mib2).IsAlignedTo(PageSize.Pmd));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PmemRange(long.MaxValue, 1));
    }
}
