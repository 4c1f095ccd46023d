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

    private DaxMapping MapOutsideLabels(DaxMappingOptions options)
    {
        string what = "'" + DevicePath + "'";
        long area = LabelSlot.AreaLength(Align);
        // The request is validated (and refused before mmap) by MapRange as for any device; only a
        // mapping that reaches into the label area is then looked at.
        DaxMapping mapping = MapRange(0, Size, Align, options, what);
        if (Size <= area || mapping.SourceOffset >= area || !HoldsLabelTable(mapping))
        {
            return mapping;
        }
        mapping.Dispose();
        if (options.Offset == 0 && options.Length is null)
        {
            // The default request: the whole allocatable part, aligned to the page size asked for.
            long start = RangeValidator.AlignUp(area, (long)(options.PageSize ?? Align));
            return MapRange(0, Size, Align, options with { Offset = Math.Min(start, Size) }, what + " (the part after its label area)");
        }
        throw new DaxLabelException(-1, DaxLabelRule.LabelAreaProtected, string.Create(CultureInfo.InvariantCulture,
            $"offset {options.Offset} lies in the label area [0, {area}) of '{DevicePath}', which holds a DaxRangeAllocator table: " +
            $"map from offset {area} on, map ranges with DaxRangeAllocator.Map, or use DaxDevice.MapRaw to reach the labels on purpose."), DevicePath);
    }

    /// <summary>
    /// Whether the label area holds a table: an allocator in this process owns it, or either slot
    /// is published with the label magic (a table written by another process or an earlier run).
    /// Read through <paramref name="mapping"/> where it covers a slot's head, otherwise through a
    /// read-only mapping of the label area.
    /// </summary>
    private bool HoldsLabelTable(DaxMapping mapping)
    {
        if (LabelLock.IsHeld(this))
        {
            return true;
        }
        DaxMapping? probe = null;
        try
        {
            for (int slot = 0; slot < 2; slot++)
            {
                long head = slot * LabelSlot.Size;
                DaxMapping source = mapping;
                if (head < mapping.SourceOffset || head + 16 > mapping.SourceOffset + mapping.Length)
                {
                    source = probe ??= MapRange(0, Size, Align, new DaxMappingOptions { Length = LabelSlot.AreaLength(Align), ReadOnly = true },
                        "the label area of '" + DevicePath + "'");
                }
                ReadOnlySpan<byte> bytes = source.GetReadOnlySpan(head - source.SourceOffset, 16);
                if (LabelSlot.IsPublished(bytes) && BinaryPrimitives.ReadUInt64LittleEndian(bytes[8..]) == LabelSlot.Magic)
                {
                    return true;
                }
            }
            return false;
        }
        finally
        {
            probe?.Dispose();
        }
    }
}
