using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace DirectPmem.Geometry;

/// <summary>
/// The device-DAX range rules, checked once before anything is mapped: offsets and lengths are
/// multiples of the page size, lengths are positive, and ranges lie inside their container.
/// All arithmetic is overflow-safe. Refusals are <see cref="ArgumentException"/>s that name the
/// parameter, the value and the required alignment or limit.
/// </summary>
internal static class RangeValidator
{
    /// <summary>Whether <paramref name="value"/> is a multiple of <paramref name="pageSize"/>.</summary>
    /// <param name="value">An offset or length.</param>
    /// <param name="pageSize">The alignment.</param>
    internal static bool IsAligned(long value, PageSize pageSize) => (value & ((long)pageSize - 1)) == 0;

    /// <summary>Whether <paramref name="value"/> is a multiple of <paramref name="alignment"/>, a power of two.</summary>
    /// <param name="value">An offset, length or address.</param>
    /// <param name="alignment">A power of two.</param>
    internal static bool IsAligned(long value, long alignment) => (value & (alignment - 1)) == 0;

    /// <summary>Rounds <paramref name="value"/> down to a multiple of <paramref name="alignment"/> (a power of two).</summary>
    /// <param name="value">A non-negative value.</param>
    /// <param name="alignment">A power of two.</param>
    internal static long AlignDown(long value, long alignment) => value & ~(alignment - 1);

    /// <summary>Rounds <paramref name="value"/> up to a multiple of <paramref name="alignment"/> (a power of two).</summary>
    /// <param name="value">A non-negative value.</param>
    /// <param name="alignment">A power of two.</param>
    /// <exception cref="OverflowException">The rounded value does not fit in a <see cref="long"/>.</exception>
    internal static long AlignUp(long value, long alignment) => checked(value + (alignment - 1)) & ~(alignment - 1);

    /// <summary>Rounds <paramref name="value"/> up like <see cref="AlignUp"/>; false when the result would pass <see cref="long.MaxValue"/>.</summary>
    /// <param name="value">A non-negative value.</param>
    /// <param name="alignment">A power of two.</param>
    /// <param name="aligned">The rounded value, or 0.</param>
    /// <returns>Whether it fits.</returns>
    internal static bool TryAlignUp(long value, long alignment, out long aligned)
    {
        if (value > long.MaxValue - (alignment - 1))
        {
            aligned = 0;
            return false;
        }
        aligned = (value + (alignment - 1)) & ~(alignment - 1);
        return true;
    }

    /// <summary>Checks that <paramref name="offset"/> is not negative, <paramref name="length"/> is positive and their sum does not overflow.</summary>
    /// <param name="offset">The first byte.</param>
    /// <param name="length">The number of bytes.</param>
    /// <param name="offsetParam">The name of the offset parameter, for the error.</param>
    /// <param name="lengthParam">The name of the length parameter, for the error.</param>
    /// <exception cref="ArgumentOutOfRangeException">A rule is broken; the exception names the parameter.</exception>
    internal static void ValidateNonEmpty(long offset, long length, string offsetParam = "offset", string lengthParam = "length")
    {
        if (offset < 0)
        {
            Throw(offsetParam, offset, $"offset {offset} is negative.");
        }
        if (length <= 0)
        {
            Throw(lengthParam, length, length == 0 ? "length is 0; an empty range cannot be mapped." : $"length {length} is negative.");
        }
        if (length > long.MaxValue - offset)
        {
            Throw(lengthParam, length, Invariant($"offset 0x{offset:x} + length 0x{length:x} overflows a 64-bit offset."));
        }
    }

    /// <summary>
    /// Checks a range to be mapped: non-empty, offset and length multiples of
    /// <paramref name="pageSize"/>, and the end within <paramref name="limit"/>.
    /// </summary>
    /// <param name="offset">The first byte.</param>
    /// <param name="length">The number of bytes.</param>
    /// <param name="pageSize">The required alignment.</param>
    /// <param name="limit">The size of the containing device, file or range.</param>
    /// <param name="what">What the limit is the size of, for the error (for example a path).</param>
    /// <param name="offsetParam">The name of the offset parameter, for the error.</param>
    /// <param name="lengthParam">The name of the length parameter, for the error.</param>
    /// <exception cref="ArgumentException">The offset or length is not aligned.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range or the end lies past <paramref name="limit"/>.</exception>
    internal static void ValidateMapRange(long offset, long length, PageSize pageSize, long limit, string? what = null,
        string offsetParam = "offset", string lengthParam = "length")
    {
        PageSizes.Validate(pageSize);
        ValidateNonEmpty(offset, length, offsetParam, lengthParam);
        ValidateAligned(offset, pageSize, offsetParam);
        ValidateAligned(length, pageSize, lengthParam);
        if (offset > limit || length > limit - offset)
        {
            Throw(lengthParam, length, Invariant(
                $"offset 0x{offset:x} + length 0x{length:x} = 0x{(ulong)offset + (ulong)length:x} lies past the end 0x{limit:x} of {what ?? "the source"}; touching it would raise SIGBUS."));
        }
    }

    /// <summary>Checks that <paramref name="value"/> is a multiple of <paramref name="pageSize"/>.</summary>
    /// <param name="value">An offset or length.</param>
    /// <param name="pageSize">The required alignment.</param>
    /// <param name="paramName">The parameter to name in the error.</param>
    /// <exception cref="ArgumentException"><paramref name="value"/> is not aligned.</exception>
    internal static void ValidateAligned(long value, PageSize pageSize, string paramName)
    {
        if (!IsAligned(value, pageSize))
        {
            ThrowMisaligned(value, pageSize, paramName);
        }
    }

    [DoesNotReturn]
    private static void ThrowMisaligned(long value, PageSize pageSize, string paramName)
        => throw new ArgumentException(Invariant(
            $"{paramName} 0x{value:x} ({value}) is not a multiple of the page size {pageSize.ToDisplayString()} ({(long)pageSize}); device-DAX refuses misaligned offsets and lengths."),
            paramName);

    [DoesNotReturn]
    private static void Throw(string paramName, long value, string message)
        => throw new ArgumentOutOfRangeException(paramName, value, message);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
