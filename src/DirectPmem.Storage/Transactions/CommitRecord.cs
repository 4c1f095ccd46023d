using System.Buffers.Binary;
using System.IO.Hashing;
using DirectPmem.Mapping;

namespace DirectPmem.Storage.Transactions;

/// <summary>The kind of a log entry and of the commit record of its generation (heap format 4).</summary>
internal enum EntryKind : uint
{
    /// <summary>An undo entry: the old bytes of a range the transaction changes in place (the span path).</summary>
    Undo = 0,

    /// <summary>A redo entry: the new bytes of a range <see cref="Transaction.Write"/> changes, applied after the commit point.</summary>
    Redo = 1,

    /// <summary>
    /// The commit entry that ends a redo commit's entries in its log: checksum u64 @0 (XxHash3 of
    /// [8, 32) seeded by the lane), generation u64 @8, digest u64 @16 (<see cref="Lane.MixDigest"/> of
    /// the entries' checksums in log order), entry count u32 @24, kind u32 @28. No payload.
    /// </summary>
    Commit = 2,
}

/// <summary>
/// An undo commit's record (heap format 4). Each lane has two, one per log half: the record of
/// generation g lives in line g mod 2 of the lane header, at byte 8 of the line, so a commit never
/// overwrites the record of the lane's previous commit. Fields: generation u64 @0, undo entry count
/// u32 @8, kind u32 @12 (<see cref="EntryKind.Undo"/>), data hash u64 @16, record check u64 @24
/// (XxHash3 of bytes [0, 24) seeded by the lane). The data hash is the commit's
/// (<see cref="CommitDataHash"/>): the record says "g committed" exactly when the data it describes
/// is on the media. A redo commit keeps its record in its log instead, as the commit entry after its
/// redo entries (<see cref="EntryKind.Commit"/>), written in the same whole lines.
/// </summary>
/// <remarks>
/// The probability argument of a redo commit: after a crash before the commit fence completed, its
/// commit entry counts only if it verifies (a torn one passes its 64-bit XxHash3 checksum with a
/// chance of about 2^-64) and every entry it counts before it verifies with generation g (a torn
/// entry passes its checksum with a chance of about 2^-64) and the chained digest of their checksums
/// matches (entries of another commit in the same log match it with a chance of about 2^-64). So a
/// commit entry that verifies with all its entries means every byte of the commit reached the media,
/// and replaying it is the commit.
/// </remarks>
internal static class CommitRecord
{
    public const int Offset = 8;
    public const int Length = 32;
    private const long CheckSeedSalt = 0x5245_4344;

    /// <summary>The offset of generation <paramref name="generation"/>'s record line from the lane's start.</summary>
    public static long LineOffset(ulong generation) => (long)(generation & 1) * HeapLayout.LaneLine;

    public static void Write(Span<byte> line, ulong generation, int entries, EntryKind kind, ulong hash, long seed)
    {
        // Built and checked on the stack, then copied: hashing the line itself would load bytes whose
        // stores still wait for the line (the commit before last flushed it, and a flush may evict it).
        Span<byte> record = stackalloc byte[Length];
        BinaryPrimitives.WriteUInt64LittleEndian(record, generation);
        BinaryPrimitives.WriteUInt32LittleEndian(record[8..], (uint)entries);
        BinaryPrimitives.WriteUInt32LittleEndian(record[12..], (uint)kind);
        BinaryPrimitives.WriteUInt64LittleEndian(record[16..], hash);
        BinaryPrimitives.WriteUInt64LittleEndian(record[24..], XxHash3.HashToUInt64(record[..24], seed ^ CheckSeedSalt));
        record.CopyTo(line[Offset..]);
    }

    /// <summary>Reads a record that verifies (its check matches, its generation is not 0, its kind is known); false for any other bytes.</summary>
    public static bool TryRead(ReadOnlySpan<byte> line, long seed, out ulong generation, out int entries, out EntryKind kind, out ulong hash)
    {
        generation = BinaryPrimitives.ReadUInt64LittleEndian(line[Offset..]);
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(line[(Offset + 8)..]);
        entries = (int)Math.Min(count, int.MaxValue);
        uint rawKind = BinaryPrimitives.ReadUInt32LittleEndian(line[(Offset + 12)..]);
        kind = (EntryKind)rawKind;
        hash = BinaryPrimitives.ReadUInt64LittleEndian(line[(Offset + 16)..]);
        ulong check = BinaryPrimitives.ReadUInt64LittleEndian(line[(Offset + 24)..]);
        return generation != 0 && count <= int.MaxValue && rawKind <= (uint)EntryKind.Redo
            && XxHash3.HashToUInt64(line.Slice(Offset, 24), seed ^ CheckSeedSalt) == check;
    }

    /// <summary>
    /// Hashes one undo entry (at mapping offset <paramref name="entry"/>, naming <paramref name="target"/> relative to the heap)
    /// into the commit's data hash, by the rule in <see cref="CommitDataHash"/> (recovery hashes through it too, poison-safe).
    /// </summary>
    public static void AppendEntry(XxHash3 hasher, DaxMapping mapping, long heapBase, HeapLayout layout, long entry, long target, int length)
    {
        var source = new MappedDataHashSource(mapping);
        CommitDataHash.AppendEntry(hasher, ref source, heapBase, layout, entry, target, length);
    }
}
