using System.Buffers.Binary;
using System.Globalization;
using DirectPmem.Geometry;
using DirectPmem.Mapping;

namespace DirectPmem.Driver;

// The device's side of the label protocol: Map keeps out of the label area of a device that
// holds a DaxRangeAllocator table (one Fill(0, ...) of a whole-device mapping would otherwise
// erase every range's label).
public sealed partial class DaxDevice
{
    /// <summary>Whether the device can be written (an emulated device opened read-only cannot).</summary>
    internal bool IsWritable => _file?.IsWritable ?? true;

    /// <summary>
    /// Whether the label area holds a table: an allocator in this process owns it, or either slot
    /// of the media is published with the label magic (a table written by another process or an
    /// earlier run).
    /// </summary>
    internal bool HoldsLabelTable()
    {
        long area = LabelSlot.AreaLength(Align);
        if (Size <= area)
        {
            return false;
        }
        if (LabelLock.IsHeld(this))
        {
            return true;
        }
        using DaxMapping labels = MapRange(0, Size, Align, new DaxMappingOptions { Length = area, ReadOnly = true },
            "the label area of '" + DevicePath + "'");
        for (int slot = 0; slot < 2; slot++)
        {
            ReadOnlySpan<byte> head = labels.GetReadOnlySpan(slot * LabelSlot.Size, 16);
            if (LabelSlot.IsPublished(head) && BinaryPrimitives.ReadUInt64LittleEndian(head[8..]) == LabelSlot.Magic)
            {
                return true;
            }
        }
        return false;
    }

    private DaxMapping MapOutsideLabels(DaxMappingOptions options)
    {
        string what = "'" + DevicePath + "'";
        if (options.Offset < 0 || options.Offset >= LabelSlot.AreaLength(Align) || !HoldsLabelTable())
        {
            // Bad offsets are refused by MapRange with their own message.
            return MapRange(0, Size, Align, options, what);
        }
        long area = LabelSlot.AreaLength(Align);
        if (options.Offset == 0 && options.Length is null)
        {
            // The default request: the whole allocatable part, aligned to the page size asked for.
            long page = (long)(options.PageSize ?? Align);
            long start = page > 0 && (page & (page - 1)) == 0 ? RangeValidator.AlignUp(area, page) : area;
            return MapRange(0, Size, Align, options with { Offset = Math.Min(start, Size) }, what + " (the part after its label area)");
        }
        throw new DaxLabelException(-1, DaxLabelRule.LabelAreaProtected, string.Create(CultureInfo.InvariantCulture,
            $"offset {options.Offset} lies in the label area [0, {area}) of '{DevicePath}', which holds a DaxRangeAllocator table: " +
            $"map from offset {area} on, map ranges with DaxRangeAllocator.Map, or use DaxDevice.MapRaw to reach the labels on purpose."), DevicePath);
    }
}
