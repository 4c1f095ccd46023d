using System.Globalization;

namespace DirectPmem.Driver;

/// <summary>
/// One physical range of a device-DAX device (sysfs <c>mappingN/{start,end,page_offset}</c>, the
/// kernel's <c>dev_dax_range</c>): the bytes <c>[Start, End]</c> of physical memory back the
/// device offsets from <see cref="DeviceOffset"/>. Built only from a validated sysfs tree.
/// </summary>
public sealed class DaxDeviceRange
{
    internal DaxDeviceRange(int index, ulong start, ulong end, ulong pageOffset)
    {
        Index = index;
        Start = start;
        End = end;
        PageOffset = pageOffset;
    }

    /// <summary>N in <c>mappingN</c>.</summary>
    public int Index { get; }

    /// <summary>The first physical address.</summary>
    public ulong Start { get; }

    /// <summary>The last physical address (inclusive, as sysfs prints it).</summary>
    public ulong End { get; }

    /// <summary>The device offset of <see cref="Start"/>, in 4 KiB pages.</summary>
    public ulong PageOffset { get; }

    /// <summary>The number of bytes in the range.</summary>
    public long Length => (long)(End - Start + 1);

    /// <summary>The device offset of the first byte, in bytes.</summary>
    public long DeviceOffset => (long)(PageOffset * 4096);

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"mapping{Index}: [0x{Start:x}, 0x{End:x}] at device offset 0x{DeviceOffset:x}");
}
