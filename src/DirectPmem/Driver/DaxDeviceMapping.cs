using System.Globalization;

namespace DirectPmem.Driver;

/// <summary>
/// One physical range of a device-DAX device (<c>mappingN/{start,end,page_offset}</c>): the bytes
/// <c>[Start, End]</c> of physical memory back the device offsets from <see cref="DeviceOffset"/>.
/// </summary>
/// <param name="Index">N in <c>mappingN</c>.</param>
/// <param name="Start">The first physical address.</param>
/// <param name="End">The last physical address (inclusive, as sysfs prints it).</param>
/// <param name="PageOffset">The device offset of <paramref name="Start"/>, in 4 KiB pages.</param>
public sealed record DaxDeviceMapping(int Index, ulong Start, ulong End, ulong PageOffset)
{
    /// <summary>The number of bytes in the range.</summary>
    public long Length => (long)(End - Start + 1);

    /// <summary>The device offset of the first byte, in bytes.</summary>
    public long DeviceOffset => (long)(PageOffset * 4096);

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"mapping{Index}: [0x{Start:x}, 0x{End:x}] at device offset 0x{DeviceOffset:x}");
}
