using System.Buffers.Binary;
using System.IO.Hashing;
using DirectPmem.Mapping;

namespace DirectPmem.Storage.Transactions;

/// <summary>
/// A lane's commit record (heap format 2): the second half of the commit protocol that lets a
/// commit pay one fence instead of two. It lives in the lane line after the generation word:
/// generation u64 @8, undo entry count u32 @16, zero u32 @20, data hash u64 @24, record check u64
/// @32 (XxHash3 of bytes [8, 32) seeded by the lane). The data hash is an XxHash3 (seeded by the
/// lane) over, for each undo entry of the generation in log order, the entry's target and length
/// (its header bytes [16, 32)), the target range's contents now, and, for every allocation map byte
/// in the range that went from 0 (the snapshot) to 1 (now), the whole object it allocates.
/// </summary>
/// <remarks>
/// A record for generation g, written and flushed together with g's data and made durable by the
/// commit's single fence, says "g committed" exactly when the data it describes is on the media:
/// if the crash came before every flushed line reached the media, the data hash does not match
/// (a 2^-64 chance of a false match per torn commit for a 64-bit XxHash3) and recovery rolls g back
/// from its undo entries, which were durable before any of g's data was modified.
/// </remarks>
internal static class CommitRecord
{
    public const int Offset = 8;
    public const int Length = 32;
    private const long CheckSeedSalt = 0x5245_4344;

    public static void Write(Span<byte> line, ulong generation, int entries, ulong dataHash, long seed)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(line[Offset..], generation);
        BinaryPrimitives.WriteUInt32LittleEndian(line[(Offset + 8)..], (uint)entries);
        BinaryPrimitives.WriteUInt32LittleEndian(line[(Offset + 12)..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(line[(Offset + 16)..], dataHash);
        BinaryPrimitives.WriteUInt64LittleEndian(line[(Offset + 24)..], XxHash3.HashToUInt64(line.Slice(Offset, 24), seed ^ CheckSeedSalt));
    }

    /// <summary>Reads a record that verifies (its check matches and its generation is not 0); false for any other bytes.</summary>
    public static bool TryRead(ReadOnlySpan<byte> line, long seed, out ulong generation, out int entries, out ulong dataHash)
    {
        generation = BinaryPrimitives.ReadUInt64LittleEndian(line[Offset..]);
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(line[(Offset + 8)..]);
        entries = (int)Math.Min(count, int.MaxValue);
        dataHash = BinaryPrimitives.ReadUInt64LittleEndian(line[(Offset + 16)..]);
        ulong check = BinaryPrimitives.ReadUInt64LittleEndian(line[(Offset + 24)..]);
        return generation != 0 && count <= int.MaxValue && BinaryPrimitives.ReadUInt32LittleEndian(line[(Offset + 12)..]) == 0
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
