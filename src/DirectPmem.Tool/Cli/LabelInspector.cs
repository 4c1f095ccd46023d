using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using System.Text;
using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;

namespace DirectPmem.Tool.Cli;

/// <summary>What one label slot holds, read without trusting it.</summary>
internal sealed record LabelSlotReport(int Slot, bool Published, ulong Sequence, int Count, IReadOnlyList<string> Problems, IReadOnlyList<LabelEntryReport> Entries);

/// <summary>One range of a label slot.</summary>
internal sealed record LabelEntryReport(string Name, long Offset, long Length, long PageSize);

/// <summary>
/// Reads the two label slots at the start of a device (the format is documented in README.md and
/// in the library's LabelSlot) and lists every problem of each published slot, instead of stopping
/// at the first one as <see cref="DaxRangeAllocator.Open"/> does. The library stays the judge of a
/// table: check also asks it.
/// </summary>
internal static class LabelInspector
{
    internal const int SlotSize = 4096;
    private const ulong Magic = 0x4C4542414C4D5044; // "DPMLABEL"
    private const int HeaderSize = 64;
    private const int EntrySize = 64;
    private const int MaxEntries = 62;

    /// <summary>Reads both slots through a read-only mapping of the label area.</summary>
    internal static LabelSlotReport[] Read(DaxDevice device)
    {
        if (device.Size <= DaxRangeAllocator.LabelAreaLengthFor(device.Align))
        {
            return [];
        }
        // The label area (two 4 KiB slots, rounded up to the align): not one align unit, which is a single slot with 4 KiB pages.
        using DaxMapping labels = device.MapRaw(new DaxMappingOptions { Length = DaxRangeAllocator.LabelAreaLengthFor(device.Align), ReadOnly = true });
        return [Inspect(labels.GetReadOnlySpan(0, SlotSize), 0, device), Inspect(labels.GetReadOnlySpan(SlotSize, SlotSize), 1, device)];
    }

    private static LabelSlotReport Inspect(ReadOnlySpan<byte> slot, int index, DaxDevice device)
    {
        ulong commit = BinaryPrimitives.ReadUInt64LittleEndian(slot);
        var problems = new List<string>();
        var entries = new List<LabelEntryReport>();
        if (commit == 0)
        {
            return new LabelSlotReport(index, false, 0, 0, problems, entries);
        }
        if (BinaryPrimitives.ReadUInt64LittleEndian(slot[8..]) != Magic)
        {
            problems.Add("the magic number is not \"DPMLABEL\"");
        }
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(slot[16..]);
        if (version != 1)
        {
            problems.Add(Invariant($"version {version} is not 1"));
        }
        ulong stored = BinaryPrimitives.ReadUInt64LittleEndian(slot[(SlotSize - 8)..]);
        ulong computed = XxHash3.HashToUInt64(slot[8..(SlotSize - 8)]);
        if (stored != computed)
        {
            problems.Add(Invariant($"the checksum 0x{stored:x16} does not match the contents (0x{computed:x16})"));
        }
        ulong sequence = BinaryPrimitives.ReadUInt64LittleEndian(slot[24..]);
        if (sequence == 0 || commit != ~sequence)
        {
            problems.Add(Invariant($"the publish word 0x{commit:x16} does not match sequence {sequence}"));
        }
        uint storedIndex = BinaryPrimitives.ReadUInt32LittleEndian(slot[20..]);
        if (storedIndex != index)
        {
            problems.Add(Invariant($"it was written for slot {storedIndex}"));
        }
        long size = BinaryPrimitives.ReadInt64LittleEndian(slot[32..]);
        if (size != device.Size)
        {
            problems.Add(Invariant($"it records a device size of {size}, the device has {device.Size}"));
        }
        long align = BinaryPrimitives.ReadInt64LittleEndian(slot[40..]);
        if (align != (long)device.Align)
        {
            problems.Add(Invariant($"it records align {align}, the device has {(long)device.Align}"));
        }
        long area = BinaryPrimitives.ReadInt64LittleEndian(slot[48..]);
        if (area != DaxRangeAllocator.LabelAreaLengthFor(device.Align))
        {
            problems.Add(Invariant($"it records a label area of {area} bytes, not {DaxRangeAllocator.LabelAreaLengthFor(device.Align)}"));
        }
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(slot[56..]);
        uint entrySize = BinaryPrimitives.ReadUInt32LittleEndian(slot[60..]);
        if (entrySize != EntrySize)
        {
            problems.Add(Invariant($"the entry size is {entrySize}, not {EntrySize}"));
        }
        if (count > MaxEntries)
        {
            problems.Add(Invariant($"entry count {count} exceeds {MaxEntries}"));
            count = MaxEntries;
        }
        if (slot[(HeaderSize + (int)count * EntrySize)..(SlotSize - 8)].ContainsAnyExcept((byte)0))
        {
            problems.Add(Invariant($"bytes after the {count} entries in use are not zero"));
        }
        for (int i = 0; i < count; i++)
        {
            ReadOnlySpan<byte> e = slot.Slice(HeaderSize + i * EntrySize, EntrySize);
            ReadOnlySpan<byte> nameBytes = e[..32];
            int end = nameBytes.IndexOf((byte)0);
            string name = Encoding.UTF8.GetString(end < 0 ? nameBytes : nameBytes[..end]);
            long offset = BinaryPrimitives.ReadInt64LittleEndian(e[32..]);
            long length = BinaryPrimitives.ReadInt64LittleEndian(e[40..]);
            long page = BinaryPrimitives.ReadInt64LittleEndian(e[48..]);
            entries.Add(new LabelEntryReport(name, offset, length, page));
            if (name.Length == 0)
            {
                problems.Add(Invariant($"entry {i} has no name"));
            }
            if (!PageSizes.TryFromBytes(page, out PageSize pageSize) || pageSize < device.Align)
            {
                problems.Add(Invariant($"entry {i} '{name}' has page size {page}, not a page size that is a multiple of align {(long)device.Align}"));
            }
            else if (offset % page != 0 || length % page != 0)
            {
                problems.Add(Invariant($"entry {i} '{name}' [{offset}, +{length}) is not aligned to its {page}-byte pages"));
            }
            if (length <= 0 || offset < area || offset > device.Size - length)
            {
                problems.Add(Invariant($"entry {i} '{name}' [{offset}, +{length}) lies outside the allocatable part [{area}, {device.Size})"));
            }
        }
        for (int i = 1; i < entries.Count; i++)
        {
            if (entries[i - 1].Offset + entries[i - 1].Length > entries[i].Offset)
            {
                problems.Add(Invariant($"entries {i - 1} '{entries[i - 1].Name}' and {i} '{entries[i].Name}' overlap or are out of order"));
            }
            for (int j = 0; j < i; j++)
            {
                if (entries[j].Name == entries[i].Name)
                {
                    problems.Add(Invariant($"entries {j} and {i} are both named '{entries[i].Name}'"));
                }
            }
        }
        return new LabelSlotReport(index, true, sequence, (int)count, problems, entries);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
