using System.Globalization;

namespace DirectPmem.Geometry;

/// <summary>
/// A non-empty byte range <c>[Offset, Offset + Length)</c> within a device, file or mapping.
/// Construction checks that the offset is non-negative, the length positive and the end
/// representable, so <see cref="End"/> never overflows.
/// </summary>
public readonly record struct PmemRange
{
    /// <summary>Creates a range.</summary>
    /// <param name="offset">The first byte; not negative.</param>
    /// <param name="length">The number of bytes; positive, and <paramref name="offset"/> + <paramref name="length"/> must not overflow.</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is negative, the length is zero, or the end overflows.</exception>
    public PmemRange(long offset, long length)
    {
        RangeValidator.ValidateNonEmpty(offset, length);
        Offset = offset;
        Length = length;
    }

    /// <summary>The first byte of the range.</summary>
    public long Offset { get; }

    /// <summary>The number of bytes in the range.</summary>
    public long Length { get; }

    /// <summary>The first byte after the range.</summary>
    public long End => Offset + Length;

    /// <summary>Whether the two ranges share at least one byte.</summary>
    /// <param name="other">The other range.</param>
    public bool Overlaps(PmemRange other) => Offset < other.End && other.Offset < End;

    /// <summary>Whether <paramref name="other"/> lies wholly inside this range.</summary>
    /// <param name="other">The other range.</param>
    public bool Contains(PmemRange other) => other.Offset >= Offset && other.End <= End;

    /// <summary>Whether both the offset and the length are multiples of <paramref name="pageSize"/>.</summary>
    /// <param name="pageSize">The alignment.</param>
    public bool IsAlignedTo(PageSize pageSize) => RangeValidator.IsAligned(Offset, pageSize) && RangeValidator.IsAligned(Length, pageSize);

    /// <inheritdoc/>
    public override string ToString()
        => string.Create(CultureInfo.InvariantCulture, $"[0x{Offset:x}, 0x{End:x}) ({Length} bytes)");
}
