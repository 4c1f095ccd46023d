using DirectPmem.Internal;
using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using System.Text;
using DirectPmem.Geometry;

namespace DirectPmem.Driver;

/// <summary>
/// The on-device format of one label slot (4096 bytes, little-endian). The label area holds two
/// slots at device offsets 0 and 4096, and is <see cref="LabelSlot.AreaLength"/> bytes long.
/// </summary>
/// <remarks>
/// <code>
///   0     commit     u64  ~sequence when published; 0 while being written (torn or free)
///   8     magic      u64  "DPMLABEL"
///   16    version    u32  1
///   20    slot       u32  0 or 1: the slot this image was written for
///   24    sequence   u64  1, 2, 3 ... 2^64-2, then 1 again: the newer published slot is the table
///   32    size       u64  device size
///   40    align      u64  device alignment
///   48    area       u64  label area length (allocations start here)
///   56    count      u32  entries in use (at most 62), sorted by offset
///   60    entrySize  u32  64
///   64    entries    62 x 64 bytes: name[32] (UTF-8, zero-padded), offset u64, length u64,
///                    pageSize u64, flags u64 (0); unused entries are all zero
///   4032  reserved   56 bytes of zero
///   4088  checksum   u64  XxHash3 (64-bit, seed 0) of bytes [8, 4088)
/// </code>
/// An update writes the slot that is not the table: commit := 0 and persist, then the body and
/// persist, then commit := ~sequence and persist. A crash at any point leaves that slot
/// unpublished (ignored) or fully published, so the table is the old one or the new one.
/// A published slot that fails any check is corruption, reported with its slot and rule.
/// Sequence 2^64-1 would publish the word 0, which reads as "unpublished": sequences run from
/// 1 to 2^64-2 and wrap to 1, and the newer of two slots is decided by serial-number arithmetic
/// (RFC 1982): the two published slots of a healthy table are always one step apart.
/// </remarks>
internal static class LabelSlot
{
    internal const int Size = 4096;
    internal const int HeaderSize = 64;
    internal const int EntrySize = 64;
    internal const int MaxEntries = 62;
    internal const int NameBytes = 32;
    internal const int ChecksumOffset = Size - 8;
    internal const ulong Magic = 0x4C4542414C4D5044; // "DPMLABEL" little-endian
    internal const uint Version = 1;

    /// <summary>The largest sequence number: the next one after it is 1 (2^64-1 would publish as 0, "unpublished").</summary>
    internal const ulong MaxSequence = ulong.MaxValue - 1;

    /// <summary>The sequence number after <paramref name="sequence"/>, wrapping from <see cref="MaxSequence"/> to 1.</summary>
    internal static ulong NextSequence(ulong sequence) => sequence >= MaxSequence ? 1 : sequence + 1;

    /// <summary>
    /// Whether <paramref name="candidate"/> is newer than <paramref name="than"/> on the cycle 1 .. <see cref="MaxSequence"/>:
    /// it lies less than half the cycle ahead (RFC 1982 serial-number arithmetic).
    /// </summary>
    internal static bool IsNewer(ulong candidate, ulong than)
    {
        ulong ahead = candidate >= than ? candidate - than : candidate + (MaxSequence - than);
        return ahead != 0 && ahead < 1UL << 63;
    }

    /// <summary>The label area: two slots, rounded up to the device alignment so allocations stay aligned.</summary>
    internal static long AreaLength(PageSize align) => RangeValidator.AlignUp(2 * Size, (long)align);

    internal static void Encode(Span<byte> slot, int index, ulong sequence, long deviceSize, PageSize align, IReadOnlyList<DaxAllocation> entries)
    {
        slot[..Size].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(slot, ~sequence);
        BinaryPrimitives.WriteUInt64LittleEndian(slot[8..], Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(slot[16..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(slot[20..], (uint)index);
        BinaryPrimitives.WriteUInt64LittleEndian(slot[24..], sequence);
        BinaryPrimitives.WriteInt64LittleEndian(slot[32..], deviceSize);
        BinaryPrimitives.WriteInt64LittleEndian(slot[40..], (long)align);
        BinaryPrimitives.WriteInt64LittleEndian(slot[48..], AreaLength(align));
        BinaryPrimitives.WriteUInt32LittleEndian(slot[56..], (uint)entries.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(slot[60..], EntrySize);
        for (int i = 0; i < entries.Count; i++)
        {
            Span<byte> e = slot.Slice(HeaderSize + i * EntrySize, EntrySize);
            Encoding.UTF8.GetBytes(entries[i].Name, e[..NameBytes]);
            BinaryPrimitives.WriteInt64LittleEndian(e[32..], entries[i].Offset);
            BinaryPrimitives.WriteInt64LittleEndian(e[40..], entries[i].Length);
            BinaryPrimitives.WriteInt64LittleEndian(e[48..], (long)entries[i].PageSize);
        }
        BinaryPrimitives.WriteUInt64LittleEndian(slot[ChecksumOffset..], XxHash3.HashToUInt64(slot[8..ChecksumOffset]));
    }

    /// <summary>Whether the slot is published (its commit word is not zero).</summary>
    internal static bool IsPublished(ReadOnlySpan<byte> slot) => BinaryPrimitives.ReadUInt64LittleEndian(slot) != 0;

    /// <summary>Validates a published slot and returns its sequence and entries; throws naming the slot and the rule.</summary>
    internal static (ulong Sequence, List<DaxAllocation> Entries) Decode(ReadOnlySpan<byte> slot, int index, long deviceSize, PageSize align, string? path)
    {
        if (BinaryPrimitives.ReadUInt64LittleEndian(slot[8..]) != Magic)
        {
            throw Fail(index, DaxLabelRule.BadMagic, "the magic number is not \"DPMLABEL\".", path);
        }
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(slot[16..]);
        if (version != Version)
        {
            throw Fail(index, DaxLabelRule.UnsupportedVersion, Invariant($"version {version} is not {Version}."), path);
        }
        ulong stored = BinaryPrimitives.ReadUInt64LittleEndian(slot[ChecksumOffset..]);
        ulong computed = XxHash3.HashToUInt64(slot[8..ChecksumOffset]);
        if (stored != computed)
        {
            throw Fail(index, DaxLabelRule.BadChecksum, Invariant($"the checksum 0x{stored:x16} does not match the contents (0x{computed:x16})."), path);
        }
        ulong sequence = BinaryPrimitives.ReadUInt64LittleEndian(slot[24..]);
        ulong commit = BinaryPrimitives.ReadUInt64LittleEndian(slot);
        if (sequence == 0 || commit != ~sequence)
        {
            throw Fail(index, DaxLabelRule.BadCommit, Invariant($"the publish word 0x{commit:x16} does not match sequence {sequence}."), path);
        }
        uint storedIndex = BinaryPrimitives.ReadUInt32LittleEndian(slot[20..]);
        long size = BinaryPrimitives.ReadInt64LittleEndian(slot[32..]);
        long alignBytes = BinaryPrimitives.ReadInt64LittleEndian(slot[40..]);
        long area = BinaryPrimitives.ReadInt64LittleEndian(slot[48..]);
        if (storedIndex != index || size != deviceSize || alignBytes != (long)align || area != AreaLength(align))
        {
            throw Fail(index, DaxLabelRule.WrongDevice, Invariant(
                $"written for slot {storedIndex} of a {size}-byte device aligned {alignBytes} (area {area}), not slot {index} of this {deviceSize}-byte device aligned {(long)align}."), path);
        }
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(slot[56..]);
        if (count > MaxEntries || BinaryPrimitives.ReadUInt32LittleEndian(slot[60..]) != EntrySize)
        {
            throw Fail(index, DaxLabelRule.BadEntryCount, Invariant($"entry count {count} exceeds {MaxEntries}, or the entry size is not {EntrySize}."), path);
        }
        if (slot[(HeaderSize + (int)count * EntrySize)..ChecksumOffset].ContainsAnyExcept((byte)0))
        {
            throw Fail(index, DaxLabelRule.BadEntryCount, Invariant($"bytes after the {count} entries in use are not zero."), path);
        }

        var entries = new List<DaxAllocation>((int)count);
        for (int i = 0; i < count; i++)
        {
            ReadOnlySpan<byte> e = slot.Slice(HeaderSize + i * EntrySize, EntrySize);
            string name = DecodeName(e[..NameBytes], index, i, path);
            long offset = BinaryPrimitives.ReadInt64LittleEndian(e[32..]);
            long length = BinaryPrimitives.ReadInt64LittleEndian(e[40..]);
            long pageBytes = BinaryPrimitives.ReadInt64LittleEndian(e[48..]);
            if (BinaryPrimitives.ReadUInt64LittleEndian(e[56..]) != 0)
            {
                throw Fail(index, DaxLabelRule.UnsupportedVersion, Invariant($"entry {i} '{name}' has flags this version does not know."), path);
            }
            var entry = ValidateEntry(name, offset, length, pageBytes, deviceSize, align, index, i, path);
            foreach (DaxAllocation other in entries)
            {
                if (other.Name == name)
                {
                    throw Fail(index, DaxLabelRule.DuplicateName, Invariant($"entries {entries.IndexOf(other)} and {i} are both named '{name}'."), path);
                }
            }
            if (entries.Count > 0 && entries[^1].End > offset)
            {
                throw Fail(index, DaxLabelRule.Overlap, $"entry {i} {entry} overlaps {entries[^1]} (or is out of order).", path);
            }
            entries.Add(entry);
        }
        return (sequence, entries);
    }

    /// <summary>Checks one allocation against the device; slot -1 for a request that is not from a slot.</summary>
    internal static DaxAllocation ValidateEntry(string name, long offset, long length, long pageBytes, long deviceSize, PageSize align,
        int slot, int entry, string? path)
    {
        string what = entry >= 0 ? Invariant($"entry {entry} '{name}'") : $"range '{name}'";
        if (!PageSizes.TryFromBytes(pageBytes, out PageSize pageSize) || pageBytes < (long)align)
        {
            throw Fail(slot, DaxLabelRule.BadPageSize, Invariant(
                $"{what}: page size {pageBytes} is not a page size that is a multiple of the device alignment {(long)align}."), path);
        }
        if (length <= 0 || offset < AreaLength(align) || offset > deviceSize || length > deviceSize - offset)
        {
            throw Fail(slot, DaxLabelRule.OutOfBounds, Invariant(
                $"{what}: [0x{offset:x}, +0x{length:x}) is empty or lies outside the allocatable part [0x{AreaLength(align):x}, 0x{deviceSize:x})."), path);
        }
        if (!RangeValidator.IsAligned(offset, pageSize) || !RangeValidator.IsAligned(length, pageSize))
        {
            throw Fail(slot, DaxLabelRule.Unaligned, Invariant(
                $"{what}: offset 0x{offset:x} and length 0x{length:x} must be multiples of its page size {pageSize.ToDisplayString()}."), path);
        }
        return new DaxAllocation(name, offset, length, pageSize);
    }

    /// <summary>
    /// Checks a name for a new allocation: 1 to 32 bytes of UTF-8 without NUL that decode back to the
    /// same string (a lone surrogate would be stored as U+FFFD and come back as another name).
    /// </summary>
    internal static void ValidateName(string name, string? path)
    {
        Span<byte> encoded = stackalloc byte[NameBytes];
        System.Buffers.OperationStatus status = System.Text.Unicode.Utf8.FromUtf16(name, encoded, out int charsRead, out int bytes,
            replaceInvalidSequences: false);
        if (status == System.Buffers.OperationStatus.InvalidData)
        {
            throw Fail(-1, DaxLabelRule.BadName, Invariant(
                $"name '{Escape(name)}' holds an unpaired UTF-16 surrogate at index {charsRead}: it would not read back as the same name from the label's UTF-8."), path);
        }
        if (status != System.Buffers.OperationStatus.Done || bytes == 0 || name.Contains('\0', StringComparison.Ordinal))
        {
            throw Fail(-1, DaxLabelRule.BadName, Invariant(
                $"name '{Escape(name)}' ({Encoding.UTF8.GetByteCount(name)} bytes of UTF-8) must be 1 to {NameBytes} bytes of UTF-8 without NUL."), path);
        }
    }

    // Names go into messages: control characters and surrogates as escapes, long ones cut.
    internal static string Escape(string name) => PathValidation.Escape(name);

    private static string DecodeName(ReadOnlySpan<byte> field, int slot, int entry, string? path)
    {
        int length = field.IndexOf((byte)0);
        if (length < 0)
        {
            length = field.Length;
        }
        if (length == 0 || field[length..].ContainsAnyExcept((byte)0) || !System.Text.Unicode.Utf8.IsValid(field[..length]))
        {
            throw Fail(slot, DaxLabelRule.BadName, Invariant($"entry {entry}: the name is empty, not zero-padded, or not UTF-8."), path);
        }
        return Encoding.UTF8.GetString(field[..length]);
    }

    internal static DaxLabelException Fail(int slot, DaxLabelRule rule, string message, string? path) => new(slot, rule, message, path);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
