using System.Globalization;
using DirectPmem.Geometry;

namespace DirectPmem.Driver;

/// <summary>
/// A named, exclusive child range of a device, recorded in the device's label area by
/// <see cref="DaxRangeAllocator"/>. Its offset and length are multiples of its
/// <see cref="PageSize"/>, which is itself a multiple of the device alignment. Only the allocator
/// makes them (from a validated label table); two are equal when all four values are.
/// </summary>
public sealed class DaxAllocation : IEquatable<DaxAllocation>
{
    internal DaxAllocation(string name, long offset, long length, PageSize pageSize)
    {
        Name = name;
        Offset = offset;
        Length = length;
        PageSize = pageSize;
    }

    /// <summary>The range's unique name (1 to 32 bytes of UTF-8).</summary>
    public string Name { get; }

    /// <summary>The device offset of the first byte.</summary>
    public long Offset { get; }

    /// <summary>The number of bytes.</summary>
    public long Length { get; }

    /// <summary>The range's page size: mappings of it are aligned to this.</summary>
    public PageSize PageSize { get; }

    /// <summary>The range as a <see cref="PmemRange"/>.</summary>
    public PmemRange Range => new(Offset, Length);

    /// <summary>The device offset after the last byte.</summary>
    public long End => Offset + Length;

    /// <inheritdoc/>
    public bool Equals(DaxAllocation? other) => other is not null
        && Name == other.Name && Offset == other.Offset && Length == other.Length && PageSize == other.PageSize;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as DaxAllocation);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Name, Offset, Length, PageSize);

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"'{Name}' [0x{Offset:x}, 0x{End:x}) {PageSize.ToDisplayString()} pages");
}
