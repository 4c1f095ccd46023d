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
}

/// <summary>
/// A commit record (heap format 4). Each lane has two, one per log half: the record of generation g
/// lives in line g mod 2 of the lane header, at byte 8 of the line, so a commit never overwrites the
/// record of the lane's previous commit (a redo commit's record and entries must stay intact until
/// the lane's next commit has made its home bytes durable). Fields: generation u64 @0, entry count
/// u32 @8, kind u32 @12 (<see cref="EntryKind"/>), hash u64 @16, record check u64 @24 (XxHash3 of
/// bytes [0, 24) seeded by the lane).
/// <list type="bullet">
/// <item>An undo record's hash is the commit's data hash (<see cref="CommitDataHash"/>): the record
/// says "g committed" exactly when the data it describes is on the media; its count is the number of
/// undo entries of g.</item>
/// <item>A redo record's hash is the digest of its entries' checksums in log order
/// (<see cref="Lane.MixDigest"/>); its count is the number of redo entries. It is valid only if every
/// entry it counts verifies with generation g and the digest matches, so entries and record can be
/// flushed together and share the commit's one fence.</item>
/// </list>
/// </summary>
/// <remarks>
/// The probability argument of a redo record: after a crash before the commit fence completed, a
/// record that is torn passes its 64-bit check with a chance of about 2^-64; an entry that is torn
/// passes its 64-bit XxHash3 checksum with a chance of about 2^-64; stale entries of the same
/// generation (a redo-only transaction that aborted, whose generation the next transaction reuses)
/// match the digest of the new ones with a chance of about 2^-64. So a record that verifies with all
/// its entries means every byte of the commit reached the media, and replaying it is the commit.
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
        BinaryPrimitives.WriteUInt64LittleEndian(line[Offset..], generation);
        BinaryPrimitives.WriteUInt32LittleEndian(line[(Offset + 8)..], (uint)entries);
        BinaryPrimitives.WriteUInt32LittleEndian(line[(Offset + 12)..], (uint)kind);
        BinaryPrimitives.WriteUInt64LittleEndian(line[(Offset + 16)..], hash);
        BinaryPrimitives.WriteUInt64LittleEndian(line[(Offset + 24)..], XxHash3.HashToUInt64(line.Slice(Offset, 24), seed ^ CheckSeedSalt));
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
