using System.Buffers.Binary;
using System.IO.Hashing;

namespace DirectPmem.Storage.Transactions;

/// <summary>Where <see cref="CommitDataHash"/> reads the heap's bytes: straight from the mapping (a commit) or poison-safe into buffers (recovery).</summary>
internal interface IDataHashSource
{
    /// <summary>
    /// The <paramref name="length"/> bytes at mapping offset <paramref name="offset"/>, in the buffer of
    /// <paramref name="slot"/> (a read for one slot must not change the bytes returned for another); false when they cannot be read.
    /// </summary>
    bool TryRead(long offset, int length, DataHashSlot slot, out ReadOnlySpan<byte> bytes);
}

/// <summary>What a read of <see cref="CommitDataHash"/> is for.</summary>
internal enum DataHashSlot
{
    /// <summary>The entry's target range as it is now.</summary>
    Now,

    /// <summary>The entry's snapshot (the range before the transaction).</summary>
    Snapshot,

    /// <summary>An object the range's allocation map bytes allocate.</summary>
    Object,
}

/// <summary>
/// The rule of a commit record's data hash, in one place: the commit (<see cref="CommitRecord.AppendEntry"/>, reading the
/// mapping) and recovery (<see cref="HeapValidation"/>, reading poison-safe) both hash through it, so the two cannot drift
/// (a drift would roll committed transactions back). Per undo entry, in log order: its target and length (the entry's
/// header bytes [16, 32): target i64, length u32, zero u32), the target range's contents now, and, for every allocation
/// map byte in the range that went from 0 (the snapshot) to 1 (now), the whole object it allocates.
/// </summary>
internal static class CommitDataHash
{
    /// <summary>Hashes one undo entry (at mapping offset <paramref name="entry"/>, naming <paramref name="target"/> relative to the heap at <paramref name="heapBase"/>); false when <paramref name="source"/> could not read a range.</summary>
    public static bool AppendEntry<TSource>(XxHash3 hasher, ref TSource source, long heapBase, in HeapLayout layout, long entry, long target, int length)
        where TSource : struct, IDataHashSource
    {
        Span<byte> key = stackalloc byte[16];
        BinaryPrimitives.WriteInt64LittleEndian(key, target);
        BinaryPrimitives.WriteUInt32LittleEndian(key[8..], (uint)length);
        BinaryPrimitives.WriteUInt32LittleEndian(key[12..], 0);
        hasher.Append(key);
        if (!source.TryRead(heapBase + target, length, DataHashSlot.Now, out ReadOnlySpan<byte> now))
        {
            return false;
        }
        hasher.Append(now);
        long from = Math.Max(target, layout.MapOffset);
        long to = Math.Min(target + length, layout.MapOffset + layout.ObjectCount);
        if (from >= to)
        {
            return true;
        }
        if (!source.TryRead(entry + Lane.EntryHeader, length, DataHashSlot.Snapshot, out ReadOnlySpan<byte> old))
        {
            return false;
        }
        for (long m = from; m < to; m++)
        {
            int k = (int)(m - target);
            if (now[k] == 1 && old[k] == 0)
            {
                if (!source.TryRead(heapBase + layout.ObjectsOffset + (m - layout.MapOffset) * layout.ObjectSize, layout.ObjectSize, DataHashSlot.Object, out ReadOnlySpan<byte> obj))
                {
                    return false;
                }
                hasher.Append(obj);
            }
        }
        return true;
    }
}

/// <summary>The commit's source: spans of the mapping (the commit has just written them; no copy).</summary>
internal readonly struct MappedDataHashSource(DirectPmem.Mapping.DaxMapping mapping) : IDataHashSource
{
    public bool TryRead(long offset, int length, DataHashSlot slot, out ReadOnlySpan<byte> bytes)
    {
        bytes = mapping.GetReadOnlySpan(offset, length);
        return true;
    }
}
