using System.Text;
using DirectPmem.Mapping;
using DirectPmem.Storage.Transactions;

namespace DirectPmem.Storage.Tests.Transactions;

/// <summary>Shared geometry and an observable summary of a test heap's contents.</summary>
internal static class HeapState
{
    public const long Length = 64 * 1024;

    public static readonly TransactionalHeapOptions Options = new()
    {
        LaneCount = 2,
        LaneLogSize = 1024,
        RootSize = 512,
        ObjectSize = 64,
        ObjectCount = 64,
    };

    public static TransactionalHeap Create(DaxMapping map) => TransactionalHeap.Create(map, 0, Length, Options);

    public static TransactionalHeap Open(DaxMapping map) => TransactionalHeap.Open(map, 0, Length);

    /// <summary>
    /// The root bytes, the allocated objects and their contents, as one string; also checks the
    /// allocator's own invariants (free count consistent with the map).
    /// </summary>
    public static string Describe(TransactionalHeap heap)
    {
        DaxMapping map = heap.Mapping;
        var text = new StringBuilder();
        text.Append("root ").Append(Convert.ToHexString(map.GetReadOnlySpan(heap.RootOffset, heap.RootSize)));
        int allocated = 0;
        for (int i = 0; i < heap.ObjectCount; i++)
        {
            long offset = heap.GetObjectOffset(i);
            if (heap.IsAllocated(offset))
            {
                allocated++;
                text.Append("\nobject ").Append(i).Append(' ').Append(Convert.ToHexString(map.GetReadOnlySpan(offset, heap.ObjectSize)));
            }
        }
        if (heap.FreeObjectCount != heap.ObjectCount - allocated)
        {
            throw new InvalidDataException($"free count {heap.FreeObjectCount} but {allocated} of {heap.ObjectCount} allocated");
        }
        return text.ToString();
    }

    /// <summary>Throws unless the recovered state is the acknowledged one or the one after it.</summary>
    public static void ExpectOneOf(string actual, IReadOnlyList<string> expected, int acked)
    {
        if (actual == expected[acked] || (acked + 1 < expected.Count && actual == expected[acked + 1]))
        {
            return;
        }
        int other = -1;
        for (int i = 0; i < expected.Count; i++)
        {
            if (expected[i] == actual)
            {
                other = i;
            }
        }
        throw new InvalidDataException(other >= 0
            ? $"recovered the state after operation {other}, but {acked} were acknowledged"
            : $"recovered a state that no sequence of whole transactions produces ({acked} acknowledged):\n{actual}\nexpected:\n{expected[acked]}");
    }

    public static void Fill(Span<byte> span, byte value) => span.Fill(value);
}
