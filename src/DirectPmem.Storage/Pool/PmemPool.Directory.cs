using System.Globalization;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Storage.Transactions;

namespace DirectPmem.Storage;

/// <summary>The format features a pool uses, as far as this library knows them.</summary>
[Flags]
public enum PoolFeatures
{
    /// <summary>None: a format 1.0 pool.</summary>
    None = 0,

    /// <summary>The reserved area starts with a directory of named structures (format 1.1).</summary>
    Directory = 1,

    /// <summary>The header records the durability the pool was created with (format 1.1).</summary>
    DurabilityRecorded = 2,
}

public sealed partial class PmemPool
{
    // Directory changes are serialised here (not under _gate: creating a log or heap calls back into the pool).
    private readonly Lock _directoryGate = new();
    private readonly byte[] _directoryBlock = new byte[PoolDirectory.BlockSize];

    // The directory as last written (null for a format 1.0 pool); replaced, never mutated, so readers take it without a lock.
    private volatile List<PoolDirectoryEntry>? _directory;
    private ulong _directoryGeneration;

    /// <summary>Whether the pool has a directory of named structures (every pool this library creates; not a format 1.0 pool).</summary>
    public bool HasDirectory => _directory is not null;

    /// <summary>The named structures in the pool's directory, by offset; empty for a format 1.0 pool.</summary>
    public IReadOnlyList<PoolDirectoryEntry> Structures => _directory is { } d ? d.OrderBy(e => e.Offset).ToArray() : [];

    /// <summary>Finds a named structure.</summary>
    /// <param name="name">The name.</param>
    /// <returns>The entry, or <see langword="null"/> when the directory has none of that name.</returns>
    public PoolDirectoryEntry? Find(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _directory?.Find(e => string.Equals(e.Name, name, StringComparison.Ordinal));
    }

    /// <summary>
    /// Creates an empty <see cref="PmemLog"/> of <paramref name="length"/> bytes (rounded up to 4 KiB) in a free
    /// range of the data area and names it in the directory. The log is formatted first, then the directory is
    /// updated in one crash-atomic step: after a crash the name is absent (and the range free) or names the new log.
    /// </summary>
    /// <param name="name">The log's name: 1 to 39 UTF-8 bytes, no NUL, unique in the pool.</param>
    /// <param name="length">The log's length including its 4 KiB header, at least 8192.</param>
    /// <param name="overwrite">Replace a structure of that name (any kind): the new log takes a new range, and the old one is freed in the same atomic step.</param>
    /// <returns>The new log.</returns>
    /// <exception cref="PoolDirectoryException">The name exists and <paramref name="overwrite"/> is off (<see cref="PoolDirectoryException.Existing"/> says what is there); the directory is full; no free range is long enough; or the pool has no directory (format 1.0).</exception>
    /// <exception cref="ArgumentException">The name or length is unusable.</exception>
    /// <exception cref="InvalidOperationException">The pool is read-only.</exception>
    /// <exception cref="ObjectDisposedException">The pool has been disposed.</exception>
    public PmemLog CreateLog(string name, long length, bool overwrite = false)
    {
        PmemLog? log = null;
        AddStructure(name, nameof(name), PoolStructureKind.Log, length, 2 * 4096, overwrite, // The directory is the authority on what is live: a free range may still hold the bytes of a
            // removed structure, so the log's own "a live log is here" refusal does not apply.
            entry => log = PmemLog.Create(this, entry.Offset, entry.Length, overwrite: true));
        return log!;
    }

    /// <summary>Opens and recovers the log named <paramref name="name"/> (see <see cref="PmemLog.Open(PmemPool, long)"/>).</summary>
    /// <param name="name">The log's name.</param>
    /// <returns>The log (read-only in a read-only pool).</returns>
    /// <exception cref="PoolDirectoryException">No structure has that name, or it is not a log.</exception>
    /// <exception cref="LogFormatException">The log's header is invalid.</exception>
    /// <exception cref="ObjectDisposedException">The pool has been disposed.</exception>
    public PmemLog OpenLog(string name) => OpenLog(name, null);

    /// <summary>Opens and recovers the log named <paramref name="name"/> with <paramref name="options"/> (see <see cref="PmemLog.Open(PmemPool, long, LogOpenOptions?)"/>).</summary>
    /// <param name="name">The log's name.</param>
    /// <param name="options">What recovery and the log's readers do with a record on unreadable media, or null for the defaults.</param>
    /// <returns>The log (read-only in a read-only pool, or when recovery met unreadable media: <see cref="PmemLog.RecoveryLoss"/>).</returns>
    /// <exception cref="PoolDirectoryException">No structure has that name, or it is not a log.</exception>
    /// <exception cref="LogFormatException">The log's header is invalid.</exception>
    /// <exception cref="ObjectDisposedException">The pool has been disposed.</exception>
    public PmemLog OpenLog(string name, LogOpenOptions? options) => PmemLog.Open(this, Lookup(name, PoolStructureKind.Log).Offset, options);

    /// <summary>
    /// Creates a <see cref="TransactionalHeap"/> in a free range of <paramref name="length"/> bytes (rounded up to 4 KiB)
    /// of the data area and names it in the directory, crash-atomically as <see cref="CreateLog"/> does. Unlike
    /// <see cref="PoolTransactions.CreateTransactionalHeap"/>, the heap takes only its range and not the root, so a
    /// log, heaps and reserved regions share the pool.
    /// </summary>
    /// <param name="name">The heap's name: 1 to 39 UTF-8 bytes, no NUL, unique in the pool.</param>
    /// <param name="length">The heap's region length.</param>
    /// <param name="options">The heap geometry; <see cref="TransactionalHeapOptions.Default"/> when null.</param>
    /// <param name="overwrite">Replace a structure of that name (any kind), as <see cref="CreateLog"/> does.</param>
    /// <returns>The new heap.</returns>
    /// <exception cref="PoolDirectoryException">The name exists and <paramref name="overwrite"/> is off; the directory is full; no free range is long enough; or the pool has no directory.</exception>
    /// <exception cref="ArgumentException">The name, length or geometry is unusable.</exception>
    /// <exception cref="InvalidOperationException">The pool is read-only.</exception>
    /// <exception cref="ObjectDisposedException">The pool has been disposed.</exception>
    public TransactionalHeap CreateHeap(string name, long length, TransactionalHeapOptions? options = null, bool overwrite = false)
    {
        TransactionalHeap? heap = null;
        AddStructure(name, nameof(name), PoolStructureKind.TransactionalHeap, length, 4096, overwrite,
            // As for CreateLog: the directory, not the heap's own header check, says what is live.
            entry => heap = TransactionalHeap.CreateCore(Mapping, entry.Offset, entry.Length, options, replaceExisting: true));
        heap!.Owner = this;
        return heap;
    }

    /// <summary>Opens and recovers the heap named <paramref name="name"/> (see <see cref="TransactionalHeap.Open"/>).</summary>
    /// <param name="name">The heap's name.</param>
    /// <returns>The recovered heap.</returns>
    /// <exception cref="PoolDirectoryException">No structure has that name, or it is not a heap.</exception>
    /// <exception cref="TransactionalHeapFormatException">The heap is invalid.</exception>
    /// <exception cref="InvalidOperationException">The pool is read-only (recovery writes).</exception>
    /// <exception cref="ObjectDisposedException">The pool has been disposed.</exception>
    public TransactionalHeap OpenHeap(string name)
    {
        PoolDirectoryEntry entry = Lookup(name, PoolStructureKind.TransactionalHeap);
        ThrowIfUnwritable();
        TransactionalHeap heap = TransactionalHeap.Open(Mapping, entry.Offset, entry.Length);
        // Tied to the pool as PoolTransactions' heap is: once the pool is disposed, new transactions are refused.
        heap.Owner = this;
        return heap;
    }

    /// <summary>
    /// Reserves a zeroed range of <paramref name="length"/> bytes (rounded up to 4 KiB) of the data area under a
    /// name, for a structure the caller formats itself (for example a Garnet volume): the range is zeroed and
    /// persisted first, then named in the directory crash-atomically.
    /// </summary>
    /// <param name="name">The region's name: 1 to 39 UTF-8 bytes, no NUL, unique in the pool.</param>
    /// <param name="length">The region's length, at least 1.</param>
    /// <param name="overwrite">Replace a structure of that name (any kind), as <see cref="CreateLog"/> does.</param>
    /// <returns>The new entry: its <see cref="PoolDirectoryEntry.Offset"/> and <see cref="PoolDirectoryEntry.Length"/> in <see cref="Mapping"/>.</returns>
    /// <exception cref="PoolDirectoryException">The name exists and <paramref name="overwrite"/> is off; the directory is full; no free range is long enough; or the pool has no directory.</exception>
    /// <exception cref="ArgumentException">The name or length is unusable.</exception>
    /// <exception cref="InvalidOperationException">The pool is read-only.</exception>
    /// <exception cref="ObjectDisposedException">The pool has been disposed.</exception>
    public PoolDirectoryEntry Reserve(string name, long length, bool overwrite = false)
        => AddStructure(name, nameof(name), PoolStructureKind.Reserved, length, 1, overwrite, entry => Mapping.Fill(entry.Offset, entry.Length, 0));

    /// <summary>
    /// Removes a named structure from the directory in one crash-atomic step and frees its range. The
    /// structure's bytes are left as they are; a log or heap opened from it must no longer be used.
    /// </summary>
    /// <param name="name">The name.</param>
    /// <returns>The entry removed.</returns>
    /// <exception cref="PoolDirectoryException">No structure has that name, or the pool has no directory.</exception>
    /// <exception cref="InvalidOperationException">The pool is read-only.</exception>
    /// <exception cref="ObjectDisposedException">The pool has been disposed.</exception>
    public PoolDirectoryEntry Remove(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        lock (_directoryGate)
        {
            ThrowIfUnwritable();
            List<PoolDirectoryEntry> current = RequireDirectory(name);
            PoolDirectoryEntry entry = Lookup(name, kind: null);
            WriteDirectory(current.Where(e => !ReferenceEquals(e, entry)).ToList());
            return entry;
        }
    }

    private PoolDirectoryEntry AddStructure(string name, string parameter, PoolStructureKind kind, long length, long minimumLength, bool overwrite, Action<PoolDirectoryEntry> format)
    {
        PoolDirectory.CheckName(name, parameter);
        if (length < minimumLength || length > Size)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, string.Create(CultureInfo.InvariantCulture,
                $"A {kind} needs a length from {minimumLength} bytes up to the pool size ({Size} bytes)."));
        }
        long rounded = PoolDirectory.AlignUp(length);
        lock (_directoryGate)
        {
            ThrowIfUnwritable();
            List<PoolDirectoryEntry> current = RequireDirectory(name);
            PoolDirectoryEntry? existing = Find(name);
            if (existing is not null && !overwrite)
            {
                throw new PoolDirectoryException(PoolDirectoryError.NameExists, name, existing,
                    $"The pool already holds {existing}; open it, choose another name, or pass overwrite: true to replace it.", Mapping.Path);
            }
            if (existing is null && current.Count >= PoolDirectory.Capacity)
            {
                throw new PoolDirectoryException(PoolDirectoryError.DirectoryFull, name, null, string.Create(CultureInfo.InvariantCulture,
                    $"The pool's directory holds its maximum of {PoolDirectory.Capacity} structures; remove one first."), Mapping.Path);
            }
            // The old structure's range stays taken: the new one is formatted beside it, and only the directory update swaps them.
            long offset = PoolDirectory.FindFree(current, DataOffset, Size, rounded);
            if (offset < 0)
            {
                throw new PoolDirectoryException(PoolDirectoryError.NoSpace, name, existing, string.Create(CultureInfo.InvariantCulture,
                    $"No free {rounded}-byte range is left in the data area [{DataOffset}, {Size}) beside {current.Count} structure(s)."), Mapping.Path);
            }
            var entry = new PoolDirectoryEntry(name, kind, offset, rounded);
            format(entry);
            var next = current.Where(e => !ReferenceEquals(e, existing)).ToList();
            next.Add(entry);
            WriteDirectory(next);
            return entry;
        }
    }

    private List<PoolDirectoryEntry> RequireDirectory(string name) => _directory ?? throw new PoolDirectoryException(PoolDirectoryError.NoDirectory, name, null,
        $"The pool was written by format {FormatVersion}, which has no directory of named structures. To use named structures, create a new pool with this library (PmemPool.Create or dpmem create) and copy the data across; the pool itself keeps working with offsets and the root.",
        Mapping.Path);

    private PoolDirectoryEntry Lookup(string name, PoolStructureKind? kind)
    {
        ArgumentNullException.ThrowIfNull(name);
        ThrowIfDisposed();
        RequireDirectory(name);
        PoolDirectoryEntry entry = Find(name) ?? throw new PoolDirectoryException(PoolDirectoryError.NotFound, name, null,
            $"The pool has no structure named \"{name}\" (it holds {_directory!.Count}).", Mapping.Path);
        if (kind is PoolStructureKind wanted && entry.Kind != wanted)
        {
            throw new PoolDirectoryException(PoolDirectoryError.WrongKind, name, entry, $"\"{name}\" is {entry}, not a {wanted}.", Mapping.Path);
        }
        return entry;
    }

    // Backup first, then primary, each durable before the next: a crash leaves the old directory or the new one.
    private void WriteDirectory(List<PoolDirectoryEntry> entries)
    {
        ulong generation = unchecked(_directoryGeneration + 1);
        PoolDirectory.Write(_directoryBlock, Uuid, generation, entries);
        Mapping.Write(_directoryBlock, PoolDirectory.BackupOffset);
        Mapping.Write(_directoryBlock, PoolDirectory.PrimaryOffset);
        _directoryGeneration = generation;
        _directory = entries;
    }

    // Step 11 of the documented order: both directory copies read poison-safe, the intact one chosen and validated into the sink.
    internal static List<PoolDirectoryEntry> ReadDirectory(DaxMapping mapping, PoolHeader header, List<PmemRange> bad, IFormatProblemSink<PoolHeaderField> sink, string? path,
        out ulong generation, out byte[]? repairFrom, out bool primaryIntact, out string? lostCopy)
    {
        generation = 0;
        repairFrom = null;
        byte[] primary = new byte[PoolDirectory.BlockSize];
        byte[] backup = new byte[PoolDirectory.BlockSize];
        string? primaryLost = ReadCopy(mapping, new PmemRange(PoolDirectory.PrimaryOffset, PoolDirectory.BlockSize), primary, bad, "the primary directory", out _);
        string? backupLost = ReadCopy(mapping, new PmemRange(PoolDirectory.BackupOffset, PoolDirectory.BlockSize), backup, bad, "the backup directory", out _);
        lostCopy = primaryLost ?? backupLost;
        if (!FormatHeader.Choose(primaryLost is null ? primary : null, backupLost is null ? backup : null, PoolDirectory.Rules, out primaryIntact, out PoolHeaderRepair repair))
        {
            sink.Report(PoolHeaderField.Directory, PoolProblemSeverity.Error, string.Create(CultureInfo.InvariantCulture,
                $"neither directory copy (offsets {PoolDirectory.PrimaryOffset} and {PoolDirectory.BackupOffset}) is intact: primary {primaryLost ?? FormatHeader.Describe(primary, PoolDirectory.Rules)}; backup {backupLost ?? FormatHeader.Describe(backup, PoolDirectory.Rules)}"));
            return [];
        }
        byte[] chosen = primaryIntact ? primary : backup;
        if (repair != PoolHeaderRepair.None)
        {
            repairFrom = chosen;
        }
        generation = PoolDirectory.GenerationOf(chosen);
        return PoolDirectory.Read(chosen, header.Uuid, header.DataOffset, header.PoolSize, sink);
    }

    internal static PoolFeatures FeaturesOf(PoolHeader header)
        => ((header.RoCompat & PoolHeader.RoCompatDirectory) != 0 ? PoolFeatures.Directory : PoolFeatures.None)
            | ((header.Compat & PoolHeader.CompatDurability) != 0 ? PoolFeatures.DurabilityRecorded : PoolFeatures.None);
}
