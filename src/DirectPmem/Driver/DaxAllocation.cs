using System.Globalization;
using DirectPmem.Geometry;

namespace DirectPmem.Driver;

/// <summary>
/// A named, exclusive child range of a device, recorded in the device's label area by
/// <see cref="DaxRangeAllocator"/>. Its offset and length are multiples of its
/// <see cref="PageSize"/>, which is itself a multiple of the device alignment.
/// </summary>
/// <param name="Name">The range's unique name (1 to 32 bytes of UTF-8).</param>
/// <param name="Offset">The device offset of the first byte.</param>
/// <param name="Length">The number of bytes.</param>
/// <param name="PageSize">The range's page size: mappings of it are aligned to this.</param>
public sealed record DaxAllocation(string Name, long Offset, long Length, PageSize PageSize)
{
    /// <summary>The range as a <see cref="PmemRange"/>.</summary>
    public PmemRange Range => new(Offset, Length);

    /// <summary>The device offset after the last byte.</summary>
    public long End => Offset + Length;

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"'{Name}' [0x{Offset:x}, 0x{End:x}) {PageSize.ToDisplayString()} pages");
}
