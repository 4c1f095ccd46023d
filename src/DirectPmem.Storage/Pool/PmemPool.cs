using System.Globalization;
using System.Text;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Persistence;

namespace DirectPmem.Storage;

/// <summary>
/// A pool: a mapping (device-DAX, emulated device, labelled range, DAX or page-cache file) that
/// starts with a checksummed 4 KiB header and a backup copy of it, then an area reserved for the
/// library's own structures, then the application's data area with a root offset in the header.
/// </summary>
/// <remarks>
/// <para>Layout: primary header at 0, backup header at 4096, reserved area at 8192
/// (<see cref="ReservedLength"/> bytes), data area from <see cref="DataOffset"/> to <see cref="Size"/>.</para>
/// <para>Every header update (open, <see cref="SetRoot"/>, clean close) writes the backup
/// block durably first and then the primary, each as one copy-and-persist. After a crash at any
/// instant at least one copy is intact: an open takes the primary when it is intact and restores
/// the backup from it, or else restores the primary from the intact backup, and reports which
/// (<see cref="HeaderRepair"/>).</para>
/// <para>Validation order on open (each failure is a <see cref="PoolFormatException"/> naming
/// the field; nothing is written before validation succeeds):
/// 1. the mapping is large enough for both headers (<see cref="PoolHeaderField.Size"/>);
/// 1b. before anything in the pool is loaded, the kernel's bad-block list for its range: a listed
///    range refuses the open with a <see cref="PoolMediaErrorException"/> naming it in pool offsets, unless
///    <see cref="PoolOpenOptions.BadBlockPolicy"/> opens read-only or proceeds (<see cref="KnownBadRanges"/>);
///    a list that cannot be read (<see cref="DirectPmem.Mapping.BadRangeCoverage.Unknown"/>) does not stop the open and is reported in <see cref="BadRangeCoverage"/>;
/// 1c. each header copy is read with the poison-safe <see cref="DaxMapping.ReadSafe"/> (a copy in a listed range
///    is not loaded): a copy that meets poison counts as lost and the other serves, but the pool opens read-only
///    (<see cref="ReadOnlyReason"/> names the range): a store into a bad range ends the process, so a lost copy is
///    never written over until the range is cleared;
///    both lost, or a page past the end of a truncated file, is a <see cref="PoolMediaErrorException"/>, never a crash;
/// 2-3. a copy is intact when it carries the signature and its checksum matches; with no intact
///    copy, a primary without the signature is no pool or an unfinished creation
///    (<see cref="PoolHeaderField.Signature"/>), one with it is damaged (<see cref="PoolHeaderField.Checksum"/>) —
///    the checksum frame is the same in every format version, so a torn copy is repaired rather
///    than misread as a newer version;
/// 4. major version newer than this library (<see cref="PoolHeaderField.MajorVersion"/>), header size;
/// 5. unknown incompat features: refused (<see cref="PoolHeaderField.IncompatFeatures"/>);
/// 6. unknown ro-compat features: opened read-only (<see cref="ReadOnlyReason"/>);
/// 7. architecture: endianness, pointer size, machine (<see cref="PoolHeaderField.Architecture"/>);
/// 8. layout name (<see cref="PoolHeaderField.Layout"/>);
/// 9. size and page size against the mapping (<see cref="PoolHeaderField.Size"/>, <see cref="PoolHeaderField.PageSize"/>);
/// 10. reserved area, data offset, root offset and state within bounds.</para>
/// <para>A writable open then durably marks the pool in use; <see cref="Dispose"/> marks it clean.
/// <see cref="WasCleanlyClosed"/> and <see cref="DirtyShutdownDetected"/> tell the application to
/// run its recovery.</para>
/// </remarks>
public sealed partial class PmemPool : IDisposable
{
    /// <summary>The smallest pool this library creates: two header blocks, the two directory blocks and one 4 KiB data page.</summary>
    public const long MinimumSize = 3 * PoolHeader.Size + PoolDirectory.Length;

    // The smallest pool an open accepts: a format 1.0 pool has no directory.
    internal const long MinimumOpenSize = 3 * PoolHeader.Size;

    private const long PrimaryHeaderOffset = PoolHeader.PrimaryOffset;
    private const long BackupHeaderOffset = PoolHeader.BackupOffset;
    private const long ReservedAreaOffset = PoolHeader.ReservedAreaOffset;

    private readonly DaxMapping _mapping;
    private readonly bool _ownsMapping;
    private readonly PmemFile? _file;
    private readonly Lock _gate = new();
    private readonly string _sysfsRoot;
    private readonly byte[] _block = new byte[PoolHeader.Size];
    private PoolHeader _header;

    // Set under _gate by Dispose, read without it by the structures in the pool (see EnterRead).
    private volatile bool _disposed;

    // Reads of the mapping in progress by the structures in the pool (a log's Read, a reader's
    // MoveNext): Dispose waits for them before it unmaps, so a read racing it never touches unmapped memory.
    private int _reads;

    private PmemPool(DaxMapping mapping, bool ownsMapping, PmemFile? file, PoolHeader header, string sysfsRoot, List<PoolDirectoryEntry>? directory, ulong directoryGeneration)
    {
        _directory = directory;
        _directoryGeneration = directoryGeneration;
        _mapping = mapping;
        _ownsMapping = ownsMapping;
        _file = file;
        _header = header;
        _sysfsRoot = sysfsRoot;
    }

    /// <summary>The mapping the pool lives in; the application reads and writes its data area through it.</summary>
    public DaxMapping Mapping => _mapping;

    /// <summary>The layout name the application gave at creation.</summary>
    public string Layout => _header.Layout;

    /// <summary>The pool's UUID, chosen at creation.</summary>
    public Guid Uuid => _header.Uuid;

    /// <summary>When the pool was created.</summary>
    public DateTimeOffset CreationTime => DateTimeOffset.FromUnixTimeMilliseconds(_header.CreationTimeMs);

    /// <summary>
    /// The durability the pool was created with (the mapping's <see cref="DaxMapping.Granularity"/> then), or
    /// <see langword="null"/> for a format 1.0 pool, which did not record it. A writable open with weaker
    /// durability is refused unless <see cref="PoolOpenOptions.AllowWeakerDurability"/> is set.
    /// </summary>
    public PersistGranularity? Durability => RecordedDurability(_header);

    /// <summary>
    /// Whether the pool was created on volatile memory (anonymous memory, a memfd or tmpfs file, hugetlb pages), which
    /// <see cref="PoolCreateOptions.AllowVolatile"/> allows: its contents do not survive a reboot or power loss.
    /// </summary>
    public bool CreatedOnVolatileMemory => CreatedOnBacking is MappingBacking backing && IsVolatile(backing);

    /// <summary>The backing the pool was created on (recorded since format 1.1), or <see langword="null"/> when the pool does not record it.</summary>
    public MappingBacking? CreatedOnBacking => (_header.Compat & PoolHeader.CompatDurability) != 0 && _header.Backing is >= 1 and <= (byte)MappingBacking.DeviceDax + 1
        ? (MappingBacking)(_header.Backing - 1) : null;

    /// <summary>The format version the pool was written with.</summary>
    public Version FormatVersion => new(_header.Major, _header.Minor);

    /// <summary>The format features the pool uses that this library knows (features it does not know refuse the open or make it read-only, as <see cref="ReadOnlyReason"/> says).</summary>
    public PoolFeatures Features => FeaturesOf(_header);

    /// <summary>The pool size in bytes: the mapping length.</summary>
    public long Size => _header.PoolSize;

    /// <summary>The page size recorded at creation, equal to the mapping's.</summary>
    public long PageSize => _header.PageSize;

    /// <summary>The start of the area reserved for the library's structures (8192).</summary>
    public long ReservedOffset => _header.ReservedOffset;

    /// <summary>The length of the reserved area.</summary>
    public long ReservedLength => _header.ReservedLength;

    /// <summary>The start of the application's data area.</summary>
    public long DataOffset => _header.DataOffset;

    /// <summary>The length of the application's data area.</summary>
    public long DataLength => _header.PoolSize - _header.DataOffset;

    /// <summary>The application's root offset (0 until <see cref="SetRoot"/>), in the data area.</summary>
    public long RootOffset => _header.RootOffset;

    /// <summary>Whether the pool was opened read-only (asked for, a read-only mapping, or an unknown ro-compat feature).</summary>
    public bool IsReadOnly => ReadOnlyReason is not null;

    /// <summary>Why the pool is read-only, or <see langword="null"/> when it is writable.</summary>
    public string? ReadOnlyReason { get; private init; }

    /// <summary>Which header copy the open restored from the other (a read-only open reports what it would have restored, and writes nothing).</summary>
    public PoolHeaderRepair HeaderRepair { get; private init; }

    /// <summary>
    /// Whether the pool had been closed cleanly (<see cref="Dispose"/>) before this open; a new pool
    /// counts as clean. When false the application must run its recovery.
    /// </summary>
    public bool WasCleanlyClosed { get; private init; }

    /// <summary>
    /// Whether the NVDIMMs' dirty-shutdown count moved since the pool was last opened: the platform
    /// may have lost stores in flight at a power failure, so the application must run its recovery.
    /// </summary>
    public bool DirtyShutdownDetected { get; private init; }

    /// <summary>
    /// The current dirty-shutdown count: the sum over the NVDIMMs of the pool's own region (<see cref="DaxMapping.NvdimmRegion"/>,
    /// as libpmem2's <c>pmem2_source_device_usc</c> counts), or <see langword="null"/> when the pool is on no region or a count cannot be read.
    /// </summary>
    public ulong? DirtyShutdownCount { get; private init; }

    /// <summary>
    /// The bad ranges (media errors) the kernel listed inside the pool at open, in pool offsets; empty
    /// when none (see <see cref="BadRangeCoverage"/> for how far that can be trusted). Non-empty only
    /// when <see cref="PoolOpenOptions.BadBlockPolicy"/> let the open go on; a load from one of them raises SIGBUS.
    /// </summary>
    public IReadOnlyList<PmemRange> KnownBadRanges { get; private init; } = [];

    /// <summary>
    /// How complete the bad-block list read at open was, or <see langword="null"/> for a pool this process
    /// created. <see cref="DirectPmem.Mapping.BadRangeCoverage.Unknown"/> means the pool is (or may be) on
    /// persistent memory but its list could not be read: the open goes on as with an empty list, and
    /// reports it here. <see cref="DirectPmem.Mapping.BadRangeCoverage.NoBadBlockList"/> for memory and files off pmem.
    /// </summary>
    public BadRangeCoverage? BadRangeCoverage { get; private init; }

    /// <summary>Whether the application must run its recovery: not closed cleanly, or a dirty shutdown detected.</summary>
    public bool NeedsRecovery => !WasCleanlyClosed || DirtyShutdownDetected;

    /// <summary>
    /// Creates a pool in <paramref name="mapping"/>: zeroes the reserved area, writes the backup and then
    /// the primary header durably, marked in use.
    /// </summary>
    /// <param name="mapping">A writable mapping of at least <see cref="MinimumSize"/> bytes.</param>
    /// <param name="layout">The application's layout name, checked on open: 1 to 63 UTF-8 bytes, no NUL.</param>
    /// <param name="options">Reserved area, overwrite and the sysfs root.</param>
    /// <param name="ownsMapping">Whether <see cref="Dispose"/> disposes <paramref name="mapping"/>.</param>
    /// <returns>The open pool.</returns>
    /// <exception cref="ArgumentException">The layout, reserved length or mapping is unusable (the message says which).</exception>
    /// <exception cref="PoolVolatileBackingException">The mapping is volatile memory and <see cref="PoolCreateOptions.AllowVolatile"/> is off; nothing was written.</exception>
    /// <exception cref="PmemException">The mapping already holds an intact pool header and <see cref="PoolCreateOptions.Overwrite"/> is off.</exception>
    public static PmemPool Create(DaxMapping mapping, string layout, PoolCreateOptions? options = null, bool ownsMapping = false)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        options ??= PoolCreateOptions.Default;
        CheckLayout(layout);
        CheckCreateGeometry(mapping.Length, options.ReservedLength);
        if (mapping.IsReadOnly)
        {
            throw new ArgumentException("A pool cannot be created in a read-only mapping.", nameof(mapping));
        }
        ThrowIfVolatile(mapping, options, "PmemPool.Create");
        return CreateCore(mapping, layout, options, ownsMapping, file: null);
    }

    /// <summary>
    /// Creates a file of <paramref name="size"/> bytes (mode 0600, failing if it exists), maps it and
    /// creates a pool in it. A file on a DAX file system gets cache-line durability, any other
    /// file page-cache durability (msync); <paramref name="mappingOptions"/> can require or force one.
    /// </summary>
    /// <param name="path">The file to create.</param>
    /// <param name="size">Its size, a multiple of the page size and at least <see cref="MinimumSize"/>.</param>
    /// <param name="layout">The application's layout name.</param>
    /// <param name="options">Reserved area and the sysfs root.</param>
    /// <param name="mappingOptions">How to map the file (granularity, page size).</param>
    /// <returns>The open pool, which owns the file and the mapping.</returns>
    /// <exception cref="ArgumentException">The layout or size is unusable.</exception>
    /// <exception cref="PoolVolatileBackingException">The file is on volatile memory (tmpfs, hugetlbfs) and <see cref="PoolCreateOptions.AllowVolatile"/> is off; the file was removed.</exception>
    /// <exception cref="PmemException">The file exists or cannot be created or mapped.</exception>
    public static PmemPool CreateFile(string path, long size, string layout, PoolCreateOptions? options = null, DaxMappingOptions? mappingOptions = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        options ??= PoolCreateOptions.Default;
        CheckLayout(layout);
        CheckCreateGeometry(size, options.ReservedLength);
        PmemFile file = PmemFile.Create(path, size);
        DaxMapping? mapping = null;
        try
        {
            mapping = file.Map(mappingOptions);
            ThrowIfVolatile(mapping, options, "PmemPool.CreateFile");
            return CreateCore(mapping, layout, options, ownsMapping: true, file);
        }
        catch (PoolVolatileBackingException)
        {
            // Refused before anything was written: the file made for the pool goes too, so that a retry with the opt-in can create it.
            mapping?.Dispose();
            file.Dispose();
            File.Delete(path);
            throw;
        }
        catch
        {
            mapping?.Dispose();
            file.Dispose();
            throw;
        }
    }

    /// <summary>Opens the pool in <paramref name="mapping"/>, validating its header in the documented order.</summary>
    /// <param name="mapping">The mapping that holds the pool (read-only mappings open read-only).</param>
    /// <param name="layout">The layout name the application expects.</param>
    /// <param name="options">Read-only and the sysfs root.</param>
    /// <param name="ownsMapping">Whether <see cref="Dispose"/> (or a failed open) disposes <paramref name="mapping"/>.</param>
    /// <returns>The open pool; check <see cref="NeedsRecovery"/>.</returns>
    /// <exception cref="PoolFormatException">A header check failed; <see cref="PoolFormatException.Field"/> names the field.</exception>
    /// <exception cref="PoolMediaErrorException">Known bad ranges overlap the pool (<see cref="PoolOpenOptions.BadBlockPolicy"/> <see cref="PoolBadBlockPolicy.Refuse"/>), or no header copy could be read.</exception>
    public static PmemPool Open(DaxMapping mapping, string layout, PoolOpenOptions? options = null, bool ownsMapping = false)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        ArgumentNullException.ThrowIfNull(layout);
        try
        {
            return OpenCore(mapping, layout, options ?? PoolOpenOptions.Default, ownsMapping, file: null);
        }
        catch when (ownsMapping)
        {
            mapping.Dispose();
            throw;
        }
    }

    /// <summary>Opens the pool in a file (read-only when <see cref="PoolOpenOptions.ReadOnly"/> is set).</summary>
    /// <param name="path">The pool file.</param>
    /// <param name="layout">The layout name the application expects.</param>
    /// <param name="options">Read-only and the sysfs root.</param>
    /// <param name="mappingOptions">How to map the file (granularity, page size).</param>
    /// <returns>The open pool, which owns the file and the mapping.</returns>
    /// <exception cref="PoolFormatException">A header check failed.</exception>
    /// <exception cref="PoolMediaErrorException">Known bad ranges overlap the pool (the file's list is read under <see cref="PoolOpenOptions.SysfsRoot"/>) and the policy refuses them, or no header copy could be read.</exception>
    /// <exception cref="PmemException">The file cannot be opened or mapped.</exception>
    public static PmemPool OpenFile(string path, string layout, PoolOpenOptions? options = null, DaxMappingOptions? mappingOptions = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(layout);
        options ??= PoolOpenOptions.Default;
        PmemFile file = PmemFile.Open(path, writable: !options.ReadOnly);
        DaxMapping? mapping = null;
        try
        {
            if (file.Size < MinimumOpenSize)
            {
                throw new PoolFormatException(PoolHeaderField.Size, string.Create(CultureInfo.InvariantCulture,
                    $"The file is {file.Size} bytes, smaller than the smallest pool ({MinimumOpenSize} bytes)."), path);
            }
            DaxMappingOptions effective = mappingOptions ?? DaxMappingOptions.Default;
            if (options.ReadOnly)
            {
                effective = effective with { ReadOnly = true };
            }
            mapping = file.Map(effective);
            return OpenCore(mapping, layout, options, ownsMapping: true, file);
        }
        catch
        {
            mapping?.Dispose();
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Durably sets the application's root offset: 0, or an offset in the data area. One header
    /// update (backup, then primary): after a crash the root is the old or the new value.
    /// </summary>
    /// <param name="offset">The new root offset.</param>
    /// <exception cref="ArgumentOutOfRangeException">The offset is neither 0 nor in the data area.</exception>
    /// <exception cref="InvalidOperationException">The pool is read-only.</exception>
    /// <exception cref="ObjectDisposedException">The pool has been disposed.</exception>
    public void SetRoot(long offset)
    {
        if (offset != 0 && (offset < DataOffset || offset >= Size))
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset, string.Create(CultureInfo.InvariantCulture,
                $"The root offset must be 0 or in the data area [{DataOffset}, {Size})."));
        }
        lock (_gate)
        {
            ThrowIfUnwritable();
            PoolHeader next = _header.Clone();
            next.RootOffset = offset;
            UpdateHeader(next);
        }
    }

    /// <summary>
    /// Closes the pool: deep-flushes the headers and reserved area (<see cref="DaxMapping.DeepFlush"/>:
    /// persisted, then the NVDIMM region's write-pending queues flushed where the region has a
    /// writable <c>deep_flush</c>; the application persists its own data), durably marks the pool
    /// clean, and disposes the mapping and file it owns. Idempotent. Reads of the mapping by the
    /// structures in the pool that are in progress on other threads finish first; from then on the
    /// structures (logs, heaps made by <see cref="Transactions.PoolTransactions"/>) and the pool
    /// refuse use with <see cref="ObjectDisposedException"/> naming the pool. Spans the application
    /// took from <see cref="Mapping"/> are its own to stop using.
    /// </summary>
    /// <exception cref="PmemException">
    /// The deep flush or the clean mark failed (for example writing <c>deep_flush</c> was refused). The
    /// mapping and file are disposed all the same; the pool is then not marked clean, so the next open
    /// reports <see cref="WasCleanlyClosed"/> false and the application runs its recovery: nothing is lost.
    /// </exception>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            // Pairs with the interlocked increment in EnterRead: a read either sees _disposed or is
            // counted here and waited for (reads are short and take no lock).
            Interlocked.MemoryBarrier();
            var wait = new SpinWait();
            while (Volatile.Read(ref _reads) != 0)
            {
                wait.SpinOnce();
            }
            try
            {
                if (!IsReadOnly && !_mapping.IsDisposed)
                {
                    _mapping.DeepFlush(0, DataOffset);
                    PoolHeader next = _header.Clone();
                    next.State = PoolHeader.StateClean;
                    UpdateHeader(next);
                }
            }
            finally
            {
                if (_ownsMapping)
                {
                    _mapping.Dispose();
                }
                _file?.Dispose();
            }
        }
    }

    /// <summary>Whether <see cref="Dispose"/> has begun; structures in the pool then refuse use.</summary>
    internal bool IsDisposed => _disposed;

    /// <summary>Throws <see cref="ObjectDisposedException"/> naming the pool if it has been disposed.</summary>
    internal void ThrowIfDisposed()
    {
        if (_disposed)
        {
            ThrowDisposed();
        }
    }

    /// <summary>The exception a structure in the pool throws once the pool is disposed: it names the pool.</summary>
    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    internal void ThrowDisposed() => throw new ObjectDisposedException(nameof(PmemPool),
        $"The pool{(Mapping.Path is string path ? " on '" + path + "'" : "")} has been disposed; the structures in it (logs, heaps, the root) can no longer be used.");

    /// <summary>
    /// Begins a read of the mapping by a structure in the pool: until <see cref="ExitRead"/>,
    /// <see cref="Dispose"/> does not unmap. Throws <see cref="ObjectDisposedException"/> once the pool is disposed.
    /// </summary>
    internal void EnterRead()
    {
        Interlocked.Increment(ref _reads);
        // The interlocked increment is a full fence: Dispose either sees the count or set _disposed before this read.
        if (_disposed)
        {
            Interlocked.Decrement(ref _reads);
            ThrowDisposed();
        }
    }

    /// <summary>Like <see cref="EnterRead"/>, but false instead of an exception once the pool is disposed.</summary>
    internal bool TryEnterRead()
    {
        Interlocked.Increment(ref _reads);
        if (_disposed)
        {
            Interlocked.Decrement(ref _reads);
            return false;
        }
        return true;
    }

    /// <summary>Ends a read begun with <see cref="EnterRead"/>.</summary>
    internal void ExitRead() => Interlocked.Decrement(ref _reads);

    internal void ThrowIfUnwritable()
    {
        ThrowIfDisposed();
        if (IsReadOnly)
        {
            throw new InvalidOperationException("The pool is open read-only: " + ReadOnlyReason);
        }
    }

    /// <summary>Whether a backing loses its contents at a reboot or power loss whatever is flushed: anonymous memory, a memfd or tmpfs file, hugetlb pages.</summary>
    internal static bool IsVolatile(MappingBacking backing) => backing is MappingBacking.Anonymous or MappingBacking.SharedMemory or MappingBacking.Hugetlb;

    private static void ThrowIfVolatile(DaxMapping mapping, PoolCreateOptions options, string call)
    {
        if (!options.AllowVolatile && IsVolatile(mapping.Backing))
        {
            string what = mapping.Backing switch
            {
                MappingBacking.Anonymous => "anonymous shared memory",
                MappingBacking.SharedMemory => "shared memory (a memfd, or a file on tmpfs such as /dev/shm)",
                _ => "hugetlb pages",
            };
            throw new PoolVolatileBackingException(mapping.Backing,
                $"{call}: the mapping is {mapping.Backing}, {what}: a reboot or power loss erases it, flushed or not, so a pool there is not durable. " +
                "Create the pool on persistent memory (device-DAX, a file on a DAX file system) or an ordinary file, or set PoolCreateOptions.AllowVolatile " +
                "to create it anyway (tests, benchmarks, the emulated default); the backing is recorded in the pool and dpmem info shows it.", mapping.Path);
        }
    }

    private static PmemPool CreateCore(DaxMapping mapping, string layout, PoolCreateOptions options, bool ownsMapping, PmemFile? file)
    {
        if (!options.Overwrite && (Intact(mapping.GetReadOnlySpan(PrimaryHeaderOffset, PoolHeader.Size))
            || Intact(mapping.GetReadOnlySpan(BackupHeaderOffset, PoolHeader.Size))))
        {
            throw new PmemException("The mapping already holds a pool (an intact header); set PoolCreateOptions.Overwrite to replace it.",
                call: null, errno: 0, mapping.Path);
        }
        ulong? dirty = DirtyShutdownCounter.Read(options.SysfsRoot, options.NvdimmRegion ?? mapping.NvdimmRegion);
        long reservedLength = PoolDirectory.Length + options.ReservedLength;
        var header = new PoolHeader
        {
            Major = PoolHeader.CurrentMajor,
            Minor = PoolHeader.CurrentMinor,
            Compat = PoolHeader.CompatDurability,
            RoCompat = PoolHeader.RoCompatDirectory,
            Durability = (byte)(mapping.Granularity + 1),
            Backing = (byte)(mapping.Backing + 1),
            Uuid = Guid.NewGuid(),
            Layout = layout,
            CreationTimeMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
            PoolSize = mapping.Length,
            PageSize = mapping.PageSize.ToBytes(),
            Endianness = PoolHeader.HostEndianness,
            PointerSize = (byte)IntPtr.Size,
            Machine = PoolHeader.HostMachine,
            ReservedOffset = ReservedAreaOffset,
            ReservedLength = reservedLength,
            DataOffset = ReservedAreaOffset + reservedLength,
            State = PoolHeader.StateInUse,
            Flags = dirty.HasValue ? PoolHeader.FlagDirtyShutdownKnown : 0,
            DirtyShutdownCount = dirty ?? 0,
            Generation = 0,
        };
        // The reserved area, the empty directory in it (both copies), and only then the header: a crash
        // before the header is durable leaves no pool.
        mapping.Fill(ReservedAreaOffset, reservedLength, 0);
        byte[] emptyDirectory = new byte[PoolDirectory.BlockSize];
        PoolDirectory.Write(emptyDirectory, header.Uuid, 0, []);
        mapping.Write(emptyDirectory, PoolDirectory.BackupOffset);
        mapping.Write(emptyDirectory, PoolDirectory.PrimaryOffset);
        var pool = new PmemPool(mapping, ownsMapping, file, header, options.SysfsRoot, [], 0)
        {
            WasCleanlyClosed = true,
            DirtyShutdownCount = dirty,
        };
        pool.UpdateHeader(header);
        return pool;
    }

    private static PmemPool OpenCore(DaxMapping mapping, string layout, PoolOpenOptions options, bool ownsMapping, PmemFile? file)
    {
        string? path = mapping.Path;
        if (mapping.Length < MinimumOpenSize)
        {
            throw new PoolFormatException(PoolHeaderField.Size, string.Create(CultureInfo.InvariantCulture,
                $"The mapping is {mapping.Length} bytes, smaller than the smallest pool ({MinimumOpenSize} bytes)."), path);
        }
        // 1b: the kernel's bad-block list, before anything in the pool is loaded.
        BadRangeReport report = file is not null ? file.GetBadRanges(options.SysfsRoot) : mapping.GetBadRanges();
        List<PmemRange> bad = InPoolOffsets(report.Ranges, file is not null ? mapping.SourceOffset : 0, mapping.Length);
        if (bad.Count > 0 && options.BadBlockPolicy == PoolBadBlockPolicy.Refuse)
        {
            throw new PoolMediaErrorException(
                $"Known bad ranges (media errors) overlap the pool: {DescribeRanges(bad)}. The open was refused before anything was read; " +
                "clear them (PmemFile.ClearBadRange, dpmem check --repair, or ndctl clear-errors on device-DAX) or open with PoolOpenOptions.BadBlockPolicy OpenReadOnly or Proceed.",
                path, bad);
        }

        // 2-3: each copy is read poison-safe (a copy in a listed range is not loaded at all); signature and checksum pick the intact copy.
        byte[] primary = new byte[PoolHeader.Size];
        byte[] backup = new byte[PoolHeader.Size];
        PmemRange primaryRange = new(PrimaryHeaderOffset, PoolHeader.Size);
        PmemRange backupRange = new(BackupHeaderOffset, PoolHeader.Size);
        string? primaryLost = ReadHeader(mapping, primaryRange, primary, bad, out PmemMediaErrorException? primaryError);
        string? backupLost = ReadHeader(mapping, backupRange, backup, bad, out PmemMediaErrorException? backupError);
        if (primaryError?.Kind == MediaErrorKind.BeyondEndOfFile || backupError?.Kind == MediaErrorKind.BeyondEndOfFile)
        {
            bool primaryGone = primaryError?.Kind == MediaErrorKind.BeyondEndOfFile;
            PmemMediaErrorException e = (primaryGone ? primaryError : backupError)!;
            throw new PoolMediaErrorException(string.Create(CultureInfo.InvariantCulture,
                $"The file was truncated under the pool's mapping: {(primaryGone ? primaryLost : backupLost)}. A pool of {mapping.Length} bytes no longer fits its file; nothing was written."),
                path, [new PmemRange(e.BadOffset, e.BadLength)], e);
        }
        if (primaryLost is not null && backupLost is not null)
        {
            throw new PoolMediaErrorException(
                $"Neither header copy can be read: {primaryLost}; {backupLost}. Nothing was written; the pool cannot be opened until one copy is readable.",
                path, [primaryRange, backupRange], primaryError ?? backupError);
        }
        bool primaryIntact = primaryLost is null && Intact(primary);
        bool backupIntact = backupLost is null && Intact(backup);
        if (!primaryIntact && !backupIntact && (primaryLost ?? backupLost) is string lost)
        {
            throw new PoolMediaErrorException(
                $"The only readable header copy is not intact (no signature or a failed checksum), and the other cannot be read: {lost}. Nothing was written.",
                path, [primaryLost is null ? backupRange : primaryRange], primaryError ?? backupError);
        }
        if (!primaryIntact && !backupIntact)
        {
            if (!PoolHeader.HasSignature(primary))
            {
                // Creation writes the backup durably before the primary, so a primary without the
                // signature and no intact backup is no pool, or a creation that did not complete.
                throw new PoolFormatException(PoolHeaderField.Signature,
                    "The primary header (offset 0) does not carry the DirectPmem pool signature \"DPMPOOL\\0\" and there is no intact backup: this is not a pool, or its creation did not complete.", path);
            }
            throw new PoolFormatException(PoolHeaderField.Checksum,
                "Neither header copy (offsets 0 and 4096) is intact: the primary fails its checksum and the backup its signature or checksum; the pool cannot be trusted.", path);
        }
        byte[] chosen = primaryIntact ? primary : backup;
        PoolHeaderRepair repair = primaryIntact
            ? (backupIntact && primary.AsSpan().SequenceEqual(backup) ? PoolHeaderRepair.None : PoolHeaderRepair.BackupRestoredFromPrimary)
            : PoolHeaderRepair.PrimaryRestoredFromBackup;
        var sink = new ThrowingPoolSink(path);
        PoolHeader header = PoolHeader.Read(chosen, sink);
        PoolHeader.Validate(chosen, header, layout, mapping.Length, mapping.PageSize.ToBytes(), sink);
        string? readOnly = sink.ReadOnlyReason;

        // 11: the directory (format 1.1), its two copies chosen and validated as the header's are.
        List<PoolDirectoryEntry>? directory = null;
        ulong directoryGeneration = 0;
        byte[]? directoryRepair = null;
        bool directoryPrimaryIntact = false;
        string? directoryLost = null;
        if (header.HasDirectory)
        {
            directory = ReadDirectory(mapping, header, bad, sink, path, out directoryGeneration, out directoryRepair, out directoryPrimaryIntact, out directoryLost);
        }
        if (options.ReadOnly)
        {
            readOnly = "opened read-only as asked";
        }
        else if (bad.Count > 0 && options.BadBlockPolicy == PoolBadBlockPolicy.OpenReadOnly)
        {
            readOnly = "known bad ranges overlap the pool (" + DescribeRanges(bad) + ") and PoolBadBlockPolicy.OpenReadOnly was chosen";
        }
        else if ((primaryLost ?? backupLost ?? directoryLost) is string lostCopy)
        {
            // A copy lost to poison or a listed bad range is never written over: a store into poisoned
            // memory ends the process (SIGBUS), and every later open would do the same. The intact copy
            // serves a read-only open until the range is cleared.
            readOnly = lostCopy + "; a writable open would rewrite that copy, and a store into a bad range ends the process. " +
                "Clear the range (PmemFile.ClearBadRange, dpmem check --repair, or ndctl clear-errors on device-DAX) and open the pool again";
        }
        else if (mapping.IsReadOnly)
        {
            readOnly = "the mapping is read-only";
        }

        // 12: a writable open must not run with weaker durability than the pool was created with, unless asked.
        if (readOnly is null && !options.AllowWeakerDurability && RecordedDurability(header) is PersistGranularity recorded && mapping.Granularity < recorded)
        {
            throw new PoolDurabilityException(recorded, mapping.Granularity,
                $"The pool was created with {recorded} durability on {(MappingBacking)(header.Backing - 1)}; this mapping ({mapping.Backing}) gives {mapping.Granularity}, which is weaker. " +
                "Map it as it was created (for example with DaxMappingOptions.ForceCacheLineGranularity if it was created so), open it read-only, or set PoolOpenOptions.AllowWeakerDurability.", path);
        }

        ulong? dirty = DirtyShutdownCounter.Read(options.SysfsRoot, options.NvdimmRegion ?? mapping.NvdimmRegion);
        bool dirtyDetected = dirty.HasValue && (header.Flags & PoolHeader.FlagDirtyShutdownKnown) != 0 && dirty.Value != header.DirtyShutdownCount;
        var pool = new PmemPool(mapping, ownsMapping, file, header, options.SysfsRoot, directory, directoryGeneration)
        {
            ReadOnlyReason = readOnly,
            HeaderRepair = repair,
            WasCleanlyClosed = header.State == PoolHeader.StateClean,
            DirtyShutdownDetected = dirtyDetected,
            DirtyShutdownCount = dirty,
            KnownBadRanges = bad,
            BadRangeCoverage = report.Coverage,
        };
        if (readOnly is null)
        {
            if (repair != PoolHeaderRepair.None)
            {
                // Restore the damaged or unreadable copy from the intact one before anything else is written.
                mapping.Write(chosen, primaryIntact ? BackupHeaderOffset : PrimaryHeaderOffset);
            }
            if (directoryRepair is not null)
            {
                mapping.Write(directoryRepair, directoryPrimaryIntact ? PoolDirectory.BackupOffset : PoolDirectory.PrimaryOffset);
            }
            PoolHeader next = header.Clone();
            next.State = PoolHeader.StateInUse;
            next.Flags = dirty.HasValue ? PoolHeader.FlagDirtyShutdownKnown : 0;
            next.DirtyShutdownCount = dirty ?? 0;
            pool.UpdateHeader(next);
        }
        return pool;
    }

    // A header copy into block: not loaded when a listed range covers it, else through the poison-safe
    // read (a plain copy where that is unavailable). Returns why the copy is lost, or null when it was read.
    private static string? ReadHeader(DaxMapping mapping, PmemRange range, byte[] block, List<PmemRange> bad, out PmemMediaErrorException? error)
        => ReadCopy(mapping, range, block, bad, range.Offset == PrimaryHeaderOffset ? "the primary header" : "the backup header", out error);

    // A copy of a checksummed block into block, poison-safe; returns why the copy is lost, or null when it was read.
    internal static string? ReadCopy(DaxMapping mapping, PmemRange range, byte[] block, List<PmemRange> bad, string which, out PmemMediaErrorException? error)
    {
        error = null;
        foreach (PmemRange r in bad)
        {
            if (r.Overlaps(range))
            {
                return string.Create(CultureInfo.InvariantCulture, $"{which} (offset {range.Offset}) lies in the known bad range [0x{r.Offset:x}, +0x{r.Length:x}) and was not read");
            }
        }
        try
        {
            MediaRead.Copy(mapping, range.Offset, block);
            return null;
        }
        catch (PmemMediaErrorException e)
        {
            error = e;
            string what = e.Cause;
            return string.Create(CultureInfo.InvariantCulture, $"{which} (offset {range.Offset}) met {what} at [0x{e.BadOffset:x}, +0x{e.BadLength:x})");
        }
    }

    // The source's ranges cut to the pool's window and moved to pool offsets.
    private static List<PmemRange> InPoolOffsets(IReadOnlyList<PmemRange> ranges, long sourceOffset, long length)
    {
        var result = new List<PmemRange>();
        foreach (PmemRange r in ranges)
        {
            long start = Math.Max(r.Offset, sourceOffset);
            long end = Math.Min(r.End, sourceOffset + length);
            if (start < end)
            {
                result.Add(new PmemRange(start - sourceOffset, end - start));
            }
        }
        return result;
    }

    // "[0x0, +0x1000) (primary header), ..." in pool offsets; past the headers the header is not yet read, so the area is named broadly.
    private static string DescribeRanges(List<PmemRange> ranges)
    {
        var text = new StringBuilder();
        foreach (PmemRange r in ranges)
        {
            var hits = new List<string>(3);
            if (r.Overlaps(new PmemRange(PrimaryHeaderOffset, PoolHeader.Size)))
            {
                hits.Add("primary header");
            }
            if (r.Overlaps(new PmemRange(BackupHeaderOffset, PoolHeader.Size)))
            {
                hits.Add("backup header");
            }
            if (r.End > ReservedAreaOffset)
            {
                hits.Add("reserved or data area");
            }
            if (text.Length > 0)
            {
                text.Append(", ");
            }
            text.Append(CultureInfo.InvariantCulture, $"[0x{r.Offset:x}, +0x{r.Length:x}) ({string.Join(" and ", hits)})");
        }
        return text.ToString();
    }

    private static bool Intact(ReadOnlySpan<byte> block) => PoolHeader.Intact(block);

    private static PersistGranularity? RecordedDurability(PoolHeader header)
        => (header.Compat & PoolHeader.CompatDurability) != 0 && header.Durability is >= 1 and <= (byte)PersistGranularity.Byte + 1
            ? (PersistGranularity)(header.Durability - 1) : null;

    // Backup first, then primary, each durable before the next: a crash leaves at least one intact copy.
    private void UpdateHeader(PoolHeader next)
    {
        next.Generation = unchecked(_header.Generation + 1);
        next.WriteTo(_block);
        _mapping.Write(_block, BackupHeaderOffset);
        _mapping.Write(_block, PrimaryHeaderOffset);
        _header = next;
    }

    private static void CheckLayout(string layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        int bytes = Encoding.UTF8.GetByteCount(layout);
        if (bytes == 0 || bytes > PoolHeader.MaxLayoutBytes || layout.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"The layout name must be 1 to {PoolHeader.MaxLayoutBytes} UTF-8 bytes without NUL; \"{layout}\" is {bytes}."), nameof(layout));
        }
    }

    private static void CheckCreateGeometry(long size, long reservedLength)
    {
        if (reservedLength < 0 || reservedLength % PoolHeader.Size != 0)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"The reserved length {reservedLength} must be a non-negative multiple of {PoolHeader.Size}."), nameof(reservedLength));
        }
        if (size < MinimumSize || reservedLength > size - MinimumSize)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"The pool needs {MinimumSize} bytes (two headers, the directory and a data page) plus the reserved length {reservedLength}; it has {size}."), nameof(size));
        }
    }
}
