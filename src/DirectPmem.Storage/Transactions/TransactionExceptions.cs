namespace DirectPmem.Storage.Transactions;

/// <summary>The part of a transactional heap that failed validation on open or during recovery.</summary>
public enum HeapField
{
    /// <summary>The region given for the heap (offset, length, alignment) or the mapping it is in.</summary>
    Region,
    /// <summary>The 8-byte signature at the start of the heap header: the region does not hold a transactional heap.</summary>
    Signature,
    /// <summary>The format major version: the heap was written by a newer, incompatible format.</summary>
    Version,
    /// <summary>The XxHash3 checksum of the heap header.</summary>
    Checksum,
    /// <summary>The region length recorded at creation differs from the region given.</summary>
    Length,
    /// <summary>The geometry recorded in the header (lanes, log size, root, object size and count, offsets).</summary>
    Geometry,
    /// <summary>A lane's generation word (its encoded check does not match: the word is damaged).</summary>
    LaneGeneration,
    /// <summary>An undo-log entry whose checksum verifies names a range outside the heap's transactional area.</summary>
    UndoEntry,
    /// <summary>The object allocation map holds a value other than free (0) or allocated (1).</summary>
    ObjectMap,
    /// <summary>The heap header's feature words name a feature this library does not know.</summary>
    Features,
    /// <summary>A part of the heap could not be read: poison, a page past the end of a truncated file, or a page the kernel could not provide (the message names which part and the bad range).</summary>
    MediaError,
}

/// <summary>
/// A transactional heap failed validation on open or during recovery: <see cref="Field"/> names
/// what, <see cref="Offset"/> where (a mapping offset), and the message what was expected and
/// what was found. A failed open writes nothing.
/// </summary>
public sealed class TransactionalHeapFormatException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="field">What failed validation.</param>
    /// <param name="offset">The mapping offset of the value that failed.</param>
    /// <param name="message">What was expected and what was found.</param>
    public TransactionalHeapFormatException(HeapField field, long offset, string message)
        : this(field, offset, message, null)
    {
    }

    internal TransactionalHeapFormatException(HeapField field, long offset, string message, Exception? inner)
        : base(message + " (" + field.ToString() + " at mapping offset 0x" + offset.ToString("x", System.Globalization.CultureInfo.InvariantCulture) + ")", inner)
    {
        Field = field;
        Offset = offset;
    }

    /// <summary>What failed validation.</summary>
    public HeapField Field { get; }

    /// <summary>The mapping offset of the value that failed.</summary>
    public long Offset { get; }
}

/// <summary>
/// A transaction declared or wrote more than its lane's bounded log can hold (undo entries for
/// declarations, redo entries and their commit entry for <see cref="Transaction.Write"/>). The call
/// that did not fit was refused before anything was written or modified; the transaction is still
/// active and rolls back everything before it when it is disposed without commit.
/// </summary>
public sealed class TransactionLogFullException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="lane">The lane of the transaction.</param>
    /// <param name="capacity">The lane's log capacity in bytes.</param>
    /// <param name="used">The bytes already used by the transaction.</param>
    /// <param name="required">The bytes the refused declaration needed.</param>
    public TransactionLogFullException(int lane, long capacity, long used, long required)
        : base(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"The log of lane {lane} cannot hold this range: {required} bytes needed, {capacity - used} of {capacity} free. Nothing was modified; split the work into smaller transactions or create the heap with a larger LaneLogSize."))
    {
        Lane = lane;
        Capacity = capacity;
        Used = used;
        Required = required;
    }

    /// <summary>The lane of the transaction.</summary>
    public int Lane { get; }

    /// <summary>The lane's log capacity in bytes (each of its two logs).</summary>
    public long Capacity { get; }

    /// <summary>The bytes already used by the transaction.</summary>
    public long Used { get; }

    /// <summary>The bytes the refused declaration needed (entry header included).</summary>
    public long Required { get; }
}

/// <summary>Every object of the heap's fixed-size object area is allocated (or held by a transaction that has not finished).</summary>
public sealed class HeapFullException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="objectCount">The number of objects in the heap.</param>
    /// <param name="objectSize">The size of one object.</param>
    public HeapFullException(int objectCount, int objectSize)
        : base(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"All {objectCount} objects of {objectSize} bytes are allocated; nothing was modified."))
    {
        ObjectCount = objectCount;
        ObjectSize = objectSize;
    }

    /// <summary>The number of objects in the heap.</summary>
    public int ObjectCount { get; }

    /// <summary>The size of one object in bytes.</summary>
    public int ObjectSize { get; }
}

/// <summary>
/// <see cref="TransactionalHeap.Create"/> found a valid heap header at the region's start and did not
/// wipe it: open it with <see cref="TransactionalHeap.Open"/>, or create with
/// <see cref="TransactionalHeapOptions.ReplaceExisting"/> to replace it. The message names what is there.
/// </summary>
public sealed class TransactionalHeapExistsException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="offset">The mapping offset of the existing heap.</param>
    /// <param name="formatVersion">The existing heap's format major version.</param>
    /// <param name="regionLength">The region length recorded in the existing heap's header.</param>
    /// <param name="message">What is there.</param>
    public TransactionalHeapExistsException(long offset, int formatVersion, long regionLength, string message)
        : base(message)
    {
        Offset = offset;
        FormatVersion = formatVersion;
        RegionLength = regionLength;
    }

    /// <summary>The mapping offset of the existing heap.</summary>
    public long Offset { get; }

    /// <summary>The existing heap's format major version.</summary>
    public int FormatVersion { get; }

    /// <summary>The region length recorded in the existing heap's header.</summary>
    public long RegionLength { get; }
}
