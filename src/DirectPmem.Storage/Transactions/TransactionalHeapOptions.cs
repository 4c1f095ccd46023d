namespace DirectPmem.Storage.Transactions;

/// <summary>The geometry of a new <see cref="TransactionalHeap"/>, fixed at creation.</summary>
public sealed class TransactionalHeapOptions
{
    /// <summary>The default options: 8 lanes of 16 KiB, a 4 KiB root, 256-byte objects filling the rest.</summary>
    public static TransactionalHeapOptions Default { get; } = new();

    /// <summary>
    /// The number of lanes (1 to 1024), that is how many transactions can run at once; 8 by default.
    /// A <see cref="TransactionalHeap.Begin"/> when every lane is busy waits for one.
    /// </summary>
    public int LaneCount { get; init; } = 8;

    /// <summary>
    /// The log capacity of each lane in bytes (undo entries, or redo entries and their commit entry), a multiple of 64 from 256 to 64 MiB; 16 KiB by
    /// default. A declared range costs its length rounded up to 8 plus a 32-byte entry header.
    /// </summary>
    public int LaneLogSize { get; init; } = 16 * 1024;

    /// <summary>The size of the root area in bytes (0 to 64 MiB, rounded up to 64); 4 KiB by default. It starts zeroed.</summary>
    public int RootSize { get; init; } = 4096;

    /// <summary>The size of one fixed-size object in bytes, a multiple of 8 from 8 to 1 MiB; 256 by default.</summary>
    public int ObjectSize { get; init; } = 256;

    /// <summary>The number of objects; 0 (the default) takes as many as fit in the region.</summary>
    public int ObjectCount { get; init; }

    /// <summary>
    /// Whether <see cref="TransactionalHeap.Create"/> may format over a region whose header is a valid
    /// heap's (of any format version); false by default, and Create then refuses with
    /// <see cref="TransactionalHeapExistsException"/> instead of wiping it.
    /// </summary>
    public bool ReplaceExisting { get; init; }
}
