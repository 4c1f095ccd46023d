using System.Numerics;
using System.Text;
using DirectPmem.Driver;
using DirectPmem.Mapping;
using DirectPmem.Persistence;
using DirectPmem.Storage;

namespace DirectPmem.Garnet;

/// <summary>
/// A volume of named, segmented devices for Tsavorite and Garnet (their hybrid log, append-only file
/// and checkpoints), kept as a named structure (<see cref="PoolStructureKind.GarnetVolume"/>) of a
/// DirectPmem.Storage <see cref="PmemPool"/> on a device-DAX device, an emulated device or a file on
/// a DAX file system. Hand <see cref="CreateDeviceFactoryCreator"/> to <c>GarnetServerOptions.DeviceFactoryCreator</c>.
/// </summary>
/// <remarks>
/// <para>The pool gives the volume its header with a backup copy, the architecture, durability,
/// unclean-shutdown and dirty-shutdown checks, the bad-block check at open, and <c>dpmem check</c>/<c>info</c>.
/// A pool can hold a log, heaps and volumes side by side (<see cref="CreateInPool"/>);
/// <see cref="OpenOrCreate(DaxMapping, PmemVolumeOptions?, bool)"/> makes a pool of layout <see cref="PoolLayout"/> whose data area is one volume named <see cref="DefaultName"/>.</para>
/// <para>Layout of the structure (little-endian): the structure header the pool writes and judges (8 KiB,
/// primary and backup, holding the volume's geometry as its parameters); a slot table of 256-byte slots,
/// one per (device name, segment) pair; a chunk table of one 8-byte word per chunk naming its owner
/// (slot + 1, chunk index within the segment) or 0 when free; then the data chunks. A segment owns whole
/// chunks, allocated on first write, so many small checkpoint files and large log segments share the
/// space without a fixed partition.</para>
/// <para>Every metadata change is made failure-atomic by one 8-byte <see cref="DaxMapping.Publish"/>:
/// a slot's body is written and persisted while its commit word is 0, then the commit word
/// (CRC-32 of the body, valid bit) is published; a chunk's data is written and persisted before
/// its owner word is published; a delete publishes 0 to the slot first and then to its chunks.
/// On open, chunk words whose owner slot is not live are reclaimed, so a crash leaks nothing.</para>
/// <para>The body's format and its one judge live in DirectPmem.Storage beside the pool: the open runs that judge
/// (throwing its first error, with the sentence <see cref="PoolInspector.InspectVolume"/> reports) and
/// <c>dpmem info</c>/<c>check</c> show the segments, the free space and the problems through <see cref="PoolInspector.InspectVolume"/>.</para>
/// <para>A write is durable when the call that made it returns (non-temporal copy + persist by
/// the mapping's granularity); reads copy out.</para>
/// <para>Every public method, and every method of the factories and devices it hands out, is safe
/// to call concurrently with any other, <see cref="Dispose"/> included. I/O racing a delete of its
/// segment either lands in the old segment before the delete takes it (a write is then gone with
/// the segment, as if it had finished first; a read sees the old bytes) or runs after the delete
/// (a write begins the segment again, a read sees zeros): a deleted segment's chunks are given to
/// another segment only once no I/O is inside it, so no I/O ever reads or writes another segment's
/// data. I/O racing <see cref="Dispose"/> completes before the mapping is unmapped (Dispose waits
/// for it) or fails through its callback with EIO and an <see cref="ObjectDisposedException"/>.</para>
/// </remarks>
public sealed class PmemVolume : IDisposable
{
    /// <summary>The sector size the volume's devices report and enforce: 512 bytes.</summary>
    public const int SectorSize = 512;

    /// <summary>The longest device name, in UTF-8 bytes, that a slot holds.</summary>
    public const int MaxNameBytes = VolumeFormat.MaxNameBytes;

    /// <summary>The layout name of a pool that <see cref="Create(DaxMapping, PmemVolumeOptions?, bool)"/> makes to hold one volume.</summary>
    public const string PoolLayout = "DirectPmem.Garnet";

    /// <summary>The name of the volume in a pool made by <see cref="Create(DaxMapping, PmemVolumeOptions?, bool)"/>.</summary>
    public const string DefaultName = "garnet";

    internal const int SlotSize = VolumeFormat.SlotSize;

    // The structure header the pool writes ahead of the body (PoolStructure.BodyOffset - Entry.Offset).
    private const long StructureHeaderLength = 8192;
    private const long Page = 4096;

    // The superblock word of a volume of the old format (DirectPmem.Garnet before volumes lived in pools).
    private const ulong OldFormatMagic = 0x31304E5247504450; // "DPGRNT01"

    // Whether reads go through the poison-safe copy (DaxMapping.ReadSafe): decided once per
    // process. Where it is unavailable (not x86-64, generated code disabled) a read of poison or of
    // a truncated file raises SIGBUS as any load from a mapping does.
    private static readonly bool s_readSafe = DaxMapping.IsReadSafeSupported;

    private readonly DaxMapping _map;
    private readonly PoolStructure _structure;
    private readonly bool _ownsPool;
    private readonly DaxMapping? _ownedMapping;
    private readonly Lock _lock = new();
    private readonly int _chunkShift;
    private readonly long _slotsOffset;
    private readonly long _tableOffset;
    private readonly long _dataOffset;
    private readonly Stack<int> _freeChunks;
    private readonly Stack<int> _freeSlots;
    private readonly Dictionary<(string Name, int Segment), VolumeSegment> _segments = [];

    // Deleted segments whose chunks wait for the I/O still inside them (see VolumeSegment).
    private readonly HashSet<VolumeSegment> _draining = [];
    private long _sequence;

    // Written under _lock, read without it by I/O after entering a segment (see Enter and Dispose).
    private volatile bool _disposed;

    private PmemVolume(PoolStructure structure, VolumeGeometry geometry, bool ownsPool, DaxMapping? ownedMapping)
    {
        _structure = structure;
        _map = structure.Pool.Mapping;
        _ownsPool = ownsPool;
        _ownedMapping = ownedMapping;
        ChunkSize = geometry.ChunkSize;
        _chunkShift = BitOperations.Log2((ulong)geometry.ChunkSize);
        ChunkCount = geometry.ChunkCount;
        SlotCount = geometry.SlotCount;
        // Offsets in the pool's mapping: the geometry's are relative to the structure's body.
        _slotsOffset = structure.BodyOffset + geometry.SlotsOffset;
        _tableOffset = structure.BodyOffset + geometry.TableOffset;
        _dataOffset = structure.BodyOffset + geometry.DataOffset;
        _freeChunks = new Stack<int>((int)Math.Min(geometry.ChunkCount, 1 << 20));
        _freeSlots = new Stack<int>(geometry.SlotCount);
    }

    /// <summary>The allocation unit in bytes.</summary>
    public long ChunkSize { get; }

    /// <summary>How many chunks the data area holds.</summary>
    public long ChunkCount { get; }

    /// <summary>How many (device name, segment) pairs the volume can hold.</summary>
    public int SlotCount { get; }

    /// <summary>The bytes the data area holds: <see cref="ChunkCount"/> × <see cref="ChunkSize"/>.</summary>
    public long DataCapacity => ChunkCount * ChunkSize;

    /// <summary>The bytes not yet allocated to any segment.</summary>
    public long FreeBytes
    {
        get
        {
            lock (_lock)
                return (long)_freeChunks.Count * ChunkSize;
        }
    }

    /// <summary>How many slots are free.</summary>
    public int FreeSlots
    {
        get
        {
            lock (_lock)
                return _freeSlots.Count;
        }
    }

    /// <summary>The mapping the volume lives on: its pool's mapping.</summary>
    public DaxMapping Mapping => _map;

    /// <summary>
    /// The pool the volume lives in: its <see cref="PmemPool.WasCleanlyClosed"/>, <see cref="PmemPool.DirtyShutdownDetected"/>
    /// and <see cref="PmemPool.KnownBadRanges"/> say what the open found. (Garnet recovers from its checkpoint and
    /// append-only file on every start; the volume's own metadata is crash-consistent and re-checked on every open.)
    /// </summary>
    public PmemPool Pool => _structure.Pool;

    /// <summary>The volume's entry in its pool's directory (name, range) and its body's offset in <see cref="Mapping"/>.</summary>
    public PoolStructure Structure => _structure;

    /// <summary>
    /// Makes a pool of layout <see cref="PoolLayout"/> in <paramref name="mapping"/> whose data area is one volume
    /// named <see cref="DefaultName"/>. A mapping that already holds a pool, or a volume of the old format, is
    /// refused: nothing durable is overwritten.
    /// </summary>
    /// <param name="mapping">A writable mapping; the pool uses all of it.</param>
    /// <param name="options">The geometry, or null for the defaults.</param>
    /// <param name="ownsMapping">Whether disposing the volume disposes the mapping.</param>
    /// <returns>The empty volume; it owns its pool.</returns>
    /// <exception cref="ArgumentException">The options are out of range (the parameter is named), or the mapping is read-only.</exception>
    /// <exception cref="PmemVolumeException">The mapping already holds a pool (<see cref="PmemVolumeError.AlreadyFormatted"/>) or an old-format volume (<see cref="PmemVolumeError.OldFormat"/>), or is too small for one chunk.</exception>
    /// <exception cref="PoolVolatileBackingException">The mapping is volatile memory and <see cref="PmemVolumeOptions.AllowVolatile"/> is off; nothing was written.</exception>
    public static PmemVolume Create(DaxMapping mapping, PmemVolumeOptions? options = null, bool ownsMapping = true)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        options ??= new PmemVolumeOptions();
        CheckOptions(options);
        if (mapping.IsReadOnly)
            throw new ArgumentException("The mapping is read-only; a volume is formatted on a writable mapping.", nameof(mapping));
        ThrowIfOldFormat(mapping);
        if (PoolInspector.InspectPool(mapping).LooksLikePool)
            throw new PmemVolumeException(PmemVolumeError.AlreadyFormatted, $"{Describe(mapping)} already holds a DirectPmem.Storage pool; open its volume with PmemVolume.Open.");
        // The pool's headers, reserved area and directory, then the structure header: what is left is the body.
        long body = mapping.Length - PmemPool.MinimumSize - StructureHeaderLength;
        if (mapping.Length < PmemPool.MinimumSize + StructureHeaderLength + Page)
            throw TooSmall(mapping, options, mapping.Length, Page);
        _ = Plan(mapping, body, options);
        PmemPool pool = PmemPool.Create(mapping, PoolLayout, new PoolCreateOptions { AllowVolatile = options.AllowVolatile });
        try
        {
            return Create(pool, DefaultName, pool.Size - AlignUp(pool.DataOffset, Page), options, overwrite: false, ownsPool: true, ownsMapping ? mapping : null);
        }
        catch
        {
            // Leave no pool without its volume behind: the mapping is as unformatted as it was.
            pool.Dispose();
            mapping.Fill(0, PmemPool.MinimumSize, 0);
            throw;
        }
    }

    /// <summary>
    /// Creates a volume named <paramref name="name"/> of <paramref name="length"/> bytes in a free range of
    /// <paramref name="pool"/> (beside its logs, heaps and other volumes): the pool writes the structure header
    /// holding the geometry, the volume zeroes its tables, then the pool's directory names it, crash-atomically.
    /// </summary>
    /// <param name="pool">A writable pool with a directory.</param>
    /// <param name="name">The volume's name in the pool: 1 to 39 UTF-8 bytes.</param>
    /// <param name="length">The bytes the volume takes (rounded up to 4 KiB), its 8 KiB structure header included.</param>
    /// <param name="options">The geometry, or null for the defaults.</param>
    /// <param name="overwrite">Replace a structure of that name (see <see cref="PmemPool.CreateStructure"/>).</param>
    /// <param name="ownsPool">Whether disposing the volume disposes the pool.</param>
    /// <returns>The empty volume.</returns>
    /// <exception cref="ArgumentException">The options are out of range (the parameter is named), or the pool is read-only.</exception>
    /// <exception cref="PmemVolumeException">The length is too small for one chunk (<see cref="PmemVolumeError.TooSmall"/>).</exception>
    /// <exception cref="PoolDirectoryException">The name exists, the directory is full or no free range is long enough.</exception>
    public static PmemVolume CreateInPool(PmemPool pool, string name, long length, PmemVolumeOptions? options = null, bool overwrite = false, bool ownsPool = false)
    {
        ArgumentNullException.ThrowIfNull(pool);
        options ??= new PmemVolumeOptions();
        CheckOptions(options);
        return Create(pool, name, length, options, overwrite, ownsPool, ownedMapping: null);
    }

    private static PmemVolume Create(PmemPool pool, string name, long length, PmemVolumeOptions options, bool overwrite, bool ownsPool, DaxMapping? ownedMapping)
    {
        if (pool.IsReadOnly)
            throw new ArgumentException($"The pool is read-only ({pool.ReadOnlyReason}); a volume is created in a writable pool.", nameof(pool));
        if (length < StructureHeaderLength + Page)
            throw TooSmall(pool.Mapping, options, length, StructureHeaderLength + Page);
        VolumeGeometry geometry = Plan(pool.Mapping, length - StructureHeaderLength, options);
        Span<byte> parameters = stackalloc byte[VolumeFormat.ParametersLength];
        geometry.Write(parameters);
        PoolStructure structure = pool.CreateStructure(name, PoolStructureKind.GarnetVolume, length, parameters, s =>
        {
            if (s.BodyLength < geometry.Required)
                throw new InvalidOperationException($"The pool gave {s.Entry} a {s.BodyLength}-byte body; the volume's geometry needs {geometry.Required}.");
            // The tables start empty; the data chunks are zeroed as they are first written.
            s.Pool.Mapping.Fill(s.BodyOffset, geometry.DataOffset, 0);
        }, overwrite);
        var volume = new PmemVolume(structure, geometry, ownsPool, ownedMapping);
        for (int slot = geometry.SlotCount - 1; slot >= 0; slot--)
            volume._freeSlots.Push(slot);
        for (long chunk = geometry.ChunkCount - 1; chunk >= 0; chunk--)
            volume._freeChunks.Push((int)chunk);
        volume._sequence = 1;
        return volume;
    }

    /// <summary>
    /// Opens the pool of layout <see cref="PoolLayout"/> in <paramref name="mapping"/> (its header, backup,
    /// unclean- and dirty-shutdown and bad-block checks) and the volume named <see cref="DefaultName"/> in it:
    /// validates the volume's header, loads every live slot and chunk, and reclaims chunks a crash left without a live owner.
    /// </summary>
    /// <param name="mapping">A writable mapping that holds such a pool.</param>
    /// <param name="ownsMapping">Whether disposing the volume disposes the mapping.</param>
    /// <returns>The volume; it owns its pool.</returns>
    /// <exception cref="PmemVolumeException">The mapping holds no pool (<see cref="PmemVolumeError.NotFormatted"/>), a volume of the old format (<see cref="PmemVolumeError.OldFormat"/>), or a pool or volume that does not validate (<see cref="PmemVolumeError.Corrupt"/>, the inner exception and the message name the field or offset).</exception>
    /// <exception cref="PoolMediaErrorException">Known bad ranges overlap the pool and its policy refuses them.</exception>
    public static PmemVolume Open(DaxMapping mapping, bool ownsMapping = true)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        if (mapping.IsReadOnly)
            throw new ArgumentException("The mapping is read-only; a volume is opened on a writable mapping (it reclaims orphaned chunks).", nameof(mapping));
        ThrowIfOldFormat(mapping);
        if (!PoolInspector.InspectPool(mapping).LooksLikePool)
            throw new PmemVolumeException(PmemVolumeError.NotFormatted, $"{Describe(mapping)} holds no DirectPmem.Storage pool (no pool signature in either header copy); create a volume with PmemVolume.Create.");
        PmemPool pool;
        try
        {
            pool = PmemPool.Open(mapping, PoolLayout);
        }
        catch (PoolFormatException e)
        {
            throw new PmemVolumeException(PmemVolumeError.Corrupt, $"{Describe(mapping)}: the pool does not open ({e.Field}): {e.Message}", e);
        }
        try
        {
            return Open(pool, DefaultName, ownsPool: true, ownsMapping ? mapping : null);
        }
        catch
        {
            pool.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens the volume named <paramref name="name"/> in <paramref name="pool"/>: the pool judges its structure
    /// header (both copies, version, pool, kind, name), the volume checks its geometry, loads every live slot and
    /// chunk, and reclaims chunks a crash left without a live owner.
    /// </summary>
    /// <param name="pool">A writable pool.</param>
    /// <param name="name">The volume's name in the pool.</param>
    /// <param name="ownsPool">Whether disposing the volume disposes the pool.</param>
    /// <returns>The volume.</returns>
    /// <exception cref="PmemVolumeException">No volume has that name (<see cref="PmemVolumeError.NotFormatted"/>), or its header or metadata is corrupt (<see cref="PmemVolumeError.Corrupt"/>, the offset is named).</exception>
    public static PmemVolume OpenInPool(PmemPool pool, string name, bool ownsPool = false)
    {
        ArgumentNullException.ThrowIfNull(pool);
        return Open(pool, name, ownsPool, ownedMapping: null);
    }

    private static PmemVolume Open(PmemPool pool, string name, bool ownsPool, DaxMapping? ownedMapping)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (pool.IsReadOnly)
            throw new ArgumentException($"The pool is read-only ({pool.ReadOnlyReason}); a volume is opened in a writable pool (it reclaims orphaned chunks).", nameof(pool));
        PoolStructure structure;
        try
        {
            structure = pool.OpenStructure(name, PoolStructureKind.GarnetVolume);
        }
        catch (PoolDirectoryException e)
        {
            throw new PmemVolumeException(PmemVolumeError.NotFormatted, $"{Describe(pool.Mapping)}: {e.Message}", e);
        }
        catch (PoolFormatException e)
        {
            throw new PmemVolumeException(PmemVolumeError.Corrupt, $"{Describe(pool.Mapping)} holds a corrupt DirectPmem.Garnet volume \"{name}\": {e.Message}", e);
        }
        // The one judge of the body (VolumeFormat.Examine, what PoolInspector.InspectVolume and dpmem check run): the
        // first error is thrown; nothing is written before the whole body has been judged.
        var sink = new ThrowingVolumeSink(pool.Mapping, name);
        VolumeScan scan = VolumeFormat.Examine(pool.Mapping, structure.Entry, structure.Parameters, sink)!;
        var volume = new PmemVolume(structure, scan.Geometry, ownsPool, ownedMapping);
        volume.Load(scan);
        return volume;
    }

    /// <summary>Opens the volume in <paramref name="mapping"/> (see <see cref="Open(DaxMapping, bool)"/>), or makes a pool holding one if the mapping holds no pool.</summary>
    /// <param name="mapping">A writable mapping.</param>
    /// <param name="options">The geometry used if a volume is created.</param>
    /// <param name="ownsMapping">Whether disposing the volume disposes the mapping.</param>
    /// <returns>The volume.</returns>
    /// <exception cref="PmemVolumeException">The mapping holds a volume of the old format, the existing pool or volume is corrupt, or the mapping is too small for a new one.</exception>
    public static PmemVolume OpenOrCreate(DaxMapping mapping, PmemVolumeOptions? options = null, bool ownsMapping = true)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        ThrowIfOldFormat(mapping);
        return PoolInspector.InspectPool(mapping).LooksLikePool
            ? Open(mapping, ownsMapping)
            : Create(mapping, options, ownsMapping);
    }

    /// <summary>Opens the volume named <paramref name="name"/> in <paramref name="pool"/>, or creates it there with <paramref name="length"/> bytes.</summary>
    /// <param name="pool">A writable pool with a directory.</param>
    /// <param name="name">The volume's name in the pool.</param>
    /// <param name="length">The bytes a new volume takes, its 8 KiB structure header included.</param>
    /// <param name="options">The geometry used if the volume is created.</param>
    /// <param name="ownsPool">Whether disposing the volume disposes the pool.</param>
    /// <returns>The volume.</returns>
    /// <exception cref="PmemVolumeException">The existing volume is corrupt, or the length is too small for a new one.</exception>
    /// <exception cref="PoolDirectoryException">The name belongs to another kind of structure, or there is no room for a new volume.</exception>
    public static PmemVolume OpenOrCreateInPool(PmemPool pool, string name, long length, PmemVolumeOptions? options = null, bool ownsPool = false)
    {
        ArgumentNullException.ThrowIfNull(pool);
        return pool.Find(name) is null ? CreateInPool(pool, name, length, options, overwrite: false, ownsPool) : OpenInPool(pool, name, ownsPool);
    }

    /// <summary>
    /// Maps all of <paramref name="device"/> and opens the volume in the pool on it, or makes a pool holding one if
    /// the device holds none. The volume owns the mapping; dispose the volume before the device.
    /// </summary>
    /// <param name="device">A device-DAX device, or an emulated one.</param>
    /// <param name="options">The geometry used if a volume is created.</param>
    /// <param name="mappingOptions">How to map it (for example <c>ForceCacheLineGranularity</c> to measure the pmem cost model on an emulated device); offset and length are ignored.</param>
    /// <returns>The volume.</returns>
    /// <exception cref="PmemVolumeException">The device holds a volume of the old format, the existing pool or volume is corrupt, or the device is too small for a new one.</exception>
    /// <exception cref="NotSupportedException">ForceCacheLineGranularity was asked for and the mapping did not get it.</exception>
    public static PmemVolume OpenOrCreateOnDevice(DaxDevice device, PmemVolumeOptions? options = null, DaxMappingOptions? mappingOptions = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        mappingOptions ??= new DaxMappingOptions();
        DaxMapping map = device.Map(mappingOptions with { Offset = 0, Length = null, ReadOnly = false });
        try
        {
            if (mappingOptions.ForceCacheLineGranularity && map.Granularity != PersistGranularity.CacheLine)
            {
                // Refuse rather than measure msync while calling it the pmem cost model.
                throw new NotSupportedException(
                    $"'{device.DevicePath}' was mapped with {map.Granularity} granularity although ForceCacheLineGranularity was asked for " +
                    "(DaxDevice.Map of an emulated device in a file does not pass the option on). Map the device's file with " +
                    "PmemFile.Open(path).Map(new DaxMappingOptions { Length = device.Size, ForceCacheLineGranularity = true }) and use PmemVolume.OpenOrCreate(mapping).");
            }
            return OpenOrCreate(map, options, ownsMapping: true);
        }
        catch
        {
            map.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A device factory creator for <c>GarnetServerOptions.DeviceFactoryCreator</c> (or any
    /// Tsavorite checkpoint manager): every named device it hands out lives on this volume.
    /// </summary>
    /// <returns>The creator; it does not own the volume.</returns>
    public PmemNamedDeviceFactoryCreator CreateDeviceFactoryCreator() => new(this);

    /// <summary>The names of the devices (without segment numbers) on the volume, sorted.</summary>
    /// <returns>A snapshot of the names.</returns>
    public IReadOnlyList<string> GetDeviceNames()
    {
        lock (_lock)
        {
            ThrowIfDisposed();
            var names = new SortedSet<string>(StringComparer.Ordinal);
            foreach (VolumeSegment segment in _segments.Values)
                names.Add(segment.Name);
            return [.. names];
        }
    }

    /// <summary>
    /// Closes the volume and disposes the mapping if the volume owns it. I/O already in progress
    /// on other threads completes first (Dispose waits for it; device I/O is inline and short);
    /// devices handed out fail later I/O through the callback with EIO and an
    /// <see cref="ObjectDisposedException"/>. Safe to call more than once and from several threads.
    /// </summary>
    public void Dispose()
    {
        List<VolumeSegment> inside;
        lock (_lock)
        {
            if (_disposed)
                return;
            _disposed = true;
            inside = [.. _segments.Values, .. _draining];
        }
        // Pairs with the interlocked increment in Enter: either the I/O sees _disposed, or this
        // loop sees its count and waits for it.
        Interlocked.MemoryBarrier();
        foreach (VolumeSegment segment in inside)
        {
            var wait = new SpinWait();
            while (segment.Users != 0)
                wait.SpinOnce();
        }
        if (_ownsPool)
            _structure.Pool.Dispose();
        _ownedMapping?.Dispose();
    }

    internal int ChunkShift => _chunkShift;

    /// <summary>The largest power of two not above <see cref="DataCapacity"/>: what a device reports as its capacity.</summary>
    internal long ReportedCapacity => (long)BitOperations.RoundUpToPowerOf2((ulong)DataCapacity + 1) >> 1;

    internal VolumeSegment? Find(string name, int segment)
    {
        lock (_lock)
        {
            ThrowIfDisposed();
            return _segments.GetValueOrDefault((name, segment));
        }
    }

    internal VolumeSegment FindOrCreate(string name, int segment)
    {
        lock (_lock)
        {
            ThrowIfDisposed();
            if (_segments.TryGetValue((name, segment), out VolumeSegment? existing))
                return existing;
            byte[] nameBytes = EncodeName(name);
            if (!_freeSlots.TryPop(out int slot))
                throw new PmemVolumeException(PmemVolumeError.Full, $"{Describe(_map)}: all {SlotCount} slots are in use; cannot create segment {segment} of '{name}'. Format the volume with more slots (PmemVolumeOptions.SlotCount).");
            long sequence = _sequence++;
            long slotOffset = _slotsOffset + (long)slot * SlotSize;
            ulong commit = VolumeFormat.WriteSlot(_map.GetSpan(slotOffset, SlotSize), sequence, segment, nameBytes);
            _map.Persist(slotOffset + 8, SlotSize - 8);
            _map.Publish(slotOffset, commit);
            var created = new VolumeSegment(name, segment, slot, sequence);
            _segments.Add((name, segment), created);
            return created;
        }
    }

    /// <summary>
    /// Writes <paramref name="source"/> at <paramref name="offset"/> of the segment and makes it
    /// durable. False when the segment was deleted before the write entered it: look it up again.
    /// </summary>
    internal bool TryWrite(VolumeSegment segment, long offset, ReadOnlySpan<byte> source)
    {
        if (!Enter(segment))
            return false;
        try
        {
            WriteEntered(segment, offset, source);
        }
        finally
        {
            Exit(segment);
        }
        return true;
    }

    /// <summary>
    /// Copies bytes at <paramref name="offset"/> of the segment out; holes read as zeros. False
    /// when the segment was deleted before the read entered it: look it up again.
    /// </summary>
    internal bool TryRead(VolumeSegment? segment, long offset, Span<byte> destination)
    {
        if (segment is null)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            destination.Clear();
            return true;
        }
        if (!Enter(segment))
            return false;
        try
        {
            ReadEntered(segment, offset, destination);
        }
        finally
        {
            Exit(segment);
        }
        return true;
    }

    private void WriteEntered(VolumeSegment segment, long offset, ReadOnlySpan<byte> source)
    {
        long mask = ChunkSize - 1;
        while (!source.IsEmpty)
        {
            long index = offset >> _chunkShift;
            long within = offset & mask;
            int length = (int)Math.Min(source.Length, ChunkSize - within);
            int chunk = segment.ChunkAt(index);
            if (chunk >= 0)
                _map.Write(source[..length], ChunkOffset(chunk) + within, PmemCopyOptionsNoDrain);
            else
                Allocate(segment, index, within, source[..length]);
            source = source[length..];
            offset += length;
        }
        _map.Drain();
    }

    private void ReadEntered(VolumeSegment segment, long offset, Span<byte> destination)
    {
        long mask = ChunkSize - 1;
        while (!destination.IsEmpty)
        {
            long index = offset >> _chunkShift;
            long within = offset & mask;
            int length = (int)Math.Min(destination.Length, ChunkSize - within);
            int chunk = segment.ChunkAt(index);
            if (chunk < 0)
                destination[..length].Clear();
            else if (s_readSafe)
                ReadChunkSafe(segment, offset, ChunkOffset(chunk) + within, destination[..length]);
            else
                _map.GetReadOnlySpan(ChunkOffset(chunk) + within, length).CopyTo(destination);
            destination = destination[length..];
            offset += length;
        }
    }

    private void ReadChunkSafe(VolumeSegment segment, long segmentOffset, long mapOffset, Span<byte> destination)
    {
        try
        {
            _map.ReadSafe(mapOffset, destination);
        }
        catch (PmemMediaErrorException e)
        {
            throw new PmemVolumeException(PmemVolumeError.MediaError,
                $"'{segment.Name}' segment {segment.Segment}: reading {destination.Length} bytes at segment offset {segmentOffset} " +
                $"(offset {mapOffset} of {Describe(_map)}) met {e.Cause} " +
                $"at mapping offset {e.BadOffset} ({e.BadLength} bytes).", e);
        }
    }

    /// <summary>Frees one segment of a device. Returns false when it did not exist.</summary>
    internal bool RemoveSegment(string name, int segment)
    {
        lock (_lock)
        {
            ThrowIfDisposed();
            if (!_segments.Remove((name, segment), out VolumeSegment? removed))
                return false;
            Free(removed);
            return true;
        }
    }

    /// <summary>Frees every segment of the device <paramref name="name"/>.</summary>
    internal int DeleteDevice(string name)
    {
        lock (_lock)
        {
            ThrowIfDisposed();
            List<VolumeSegment> doomed = [.. _segments.Values.Where(s => s.Name == name)];
            foreach (VolumeSegment segment in doomed)
            {
                _segments.Remove((segment.Name, segment.Segment));
                Free(segment);
            }
            return doomed.Count;
        }
    }

    /// <summary>Frees every segment of every device whose name is <paramref name="directory"/> or lies under it ("" is everything).</summary>
    internal int DeleteDirectory(string directory)
    {
        lock (_lock)
        {
            ThrowIfDisposed();
            List<VolumeSegment> doomed = [.. _segments.Values.Where(s => IsUnder(s.Name, directory))];
            foreach (VolumeSegment segment in doomed)
            {
                _segments.Remove((segment.Name, segment.Segment));
                Free(segment);
            }
            return doomed.Count;
        }
    }

    /// <summary>A snapshot of every segment whose device lies under <paramref name="directory"/>.</summary>
    internal List<VolumeSegment> ListUnder(string directory)
    {
        lock (_lock)
        {
            ThrowIfDisposed();
            return [.. _segments.Values.Where(s => IsUnder(s.Name, directory))];
        }
    }

    internal static bool IsUnder(string name, string directory) =>
        directory.Length == 0 || (name.Length > directory.Length && name[directory.Length] == '/' && name.StartsWith(directory, StringComparison.Ordinal));

    internal static string Describe(DaxMapping map) => $"the mapping of '{map.Path ?? "anonymous memory"}'";

    private const PmemCopyOptions PmemCopyOptionsNoDrain = PmemCopyOptions.NoDrain;

    /// <summary>
    /// Counts an I/O into <paramref name="segment"/>: until <see cref="Exit"/> its chunks stay
    /// its own and the mapping stays mapped. False when the segment was deleted.
    /// </summary>
    private bool Enter(VolumeSegment segment)
    {
        if (!segment.TryEnter())
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return false;
        }
        // The interlocked increment above is a full fence: Dispose either sees this I/O's count
        // (and waits) or set _disposed before this read.
        if (_disposed)
        {
            Exit(segment);
            ObjectDisposedException.ThrowIf(true, this);
        }
        return true;
    }

    private void Exit(VolumeSegment segment)
    {
        if (!segment.Exit())
            return;
        // The last I/O left a deleted segment: its chunks may now be given to another.
        lock (_lock)
        {
            _draining.Remove(segment);
            if (!_disposed)
                ReleaseChunks(segment);
        }
    }

    private long ChunkOffset(int chunk) => _dataOffset + ((long)chunk << _chunkShift);

    private long TableOffset(int chunk) => _tableOffset + (long)chunk * sizeof(ulong);

    /// <summary>
    /// Gives the segment a chunk at <paramref name="index"/>: zero what the first write does not
    /// cover, write it, persist, then publish the owner word. Until that publish the chunk is free
    /// on the media, so a crash never exposes an unwritten chunk as data.
    /// </summary>
    private void Allocate(VolumeSegment segment, long index, long within, ReadOnlySpan<byte> source)
    {
        lock (_lock)
        {
            ThrowIfDisposed();
            if (segment.Removed)
            {
                // The segment was deleted while this write was inside it: the bytes go with it, as
                // if the write had finished before the delete. A deleted segment gets no new chunk.
                return;
            }
            int existing = segment.ChunkAt(index);
            if (existing >= 0)
            {
                _map.Write(source, ChunkOffset(existing) + within, PmemCopyOptionsNoDrain);
                return;
            }
            if (index >= ChunkCount)
                throw new PmemVolumeException(PmemVolumeError.OutOfRange, $"offset {index << _chunkShift} of segment {segment.Segment} of '{segment.Name}' lies beyond the volume's {DataCapacity}-byte data area.");
            if (!_freeChunks.TryPop(out int chunk))
                throw new PmemVolumeException(PmemVolumeError.Full, $"{Describe(_map)} is full: no free {ChunkSize}-byte chunk for offset {index << _chunkShift} of segment {segment.Segment} of '{segment.Name}' ({DataCapacity} bytes in all). Nothing already written was lost.");
            long chunkOffset = ChunkOffset(chunk);
            long end = within + source.Length;
            if (within > 0)
                _map.Fill(chunkOffset, within, 0, PmemCopyOptionsNoDrain);
            if (end < ChunkSize)
                _map.Fill(chunkOffset + end, ChunkSize - end, 0, PmemCopyOptionsNoDrain);
            _map.Write(source, chunkOffset + within, PmemCopyOptionsNoDrain);
            _map.Drain();
            _map.Publish(TableOffset(chunk), VolumeFormat.OwnerWord(segment.Slot, index));
            segment.SetChunk((int)index, chunk);
            segment.ChunkCount++;
        }
    }

    /// <summary>
    /// Publishes 0 to the slot (the segment is gone), then to each chunk; caller holds the lock.
    /// The chunks return to the free list now if no I/O is inside the segment, else when the last leaves.
    /// </summary>
    private void Free(VolumeSegment segment)
    {
        bool idle = segment.MarkRemoved();
        _map.Publish(_slotsOffset + (long)segment.Slot * SlotSize, 0);
        int[] chunks = segment.Chunks;
        for (int i = chunks.Length - 1; i >= 0; i--)
        {
            if (chunks[i] >= 0)
                _map.Publish(TableOffset(chunks[i]), 0);
        }
        // The slot is free at once: I/O inside a removed segment never publishes an owner word.
        _freeSlots.Push(segment.Slot);
        if (idle)
            ReleaseChunks(segment);
        else
            _draining.Add(segment);
    }

    /// <summary>Returns a removed segment's chunks to the free list; caller holds the lock and no I/O is inside it.</summary>
    private void ReleaseChunks(VolumeSegment segment)
    {
        int[] chunks = segment.Chunks;
        for (int i = chunks.Length - 1; i >= 0; i--)
        {
            if (chunks[i] >= 0)
                _freeChunks.Push(chunks[i]);
        }
    }

    /// <summary>
    /// Takes what the judge read: the live segments and their chunks, the free slots and chunks. The chunks whose owner
    /// word names no live owner (a crash between a segment's delete and its chunks' release) are reclaimed: 0 is
    /// published to each, and they are free.
    /// </summary>
    private void Load(VolumeScan scan)
    {
        foreach (ScannedSegment scanned in scan.Segments)
        {
            var loaded = new VolumeSegment(scanned.Name, scanned.Segment, scanned.Slot, scanned.Sequence);
            ReadOnlySpan<int> map = scanned.Map;
            for (int index = 0; index < map.Length; index++)
            {
                if (map[index] < 0)
                    continue;
                loaded.SetChunk(index, map[index]);
                loaded.ChunkCount++;
            }
            _segments.Add((scanned.Name, scanned.Segment), loaded);
        }
        _sequence = scan.MaxSequence + 1;
        for (int i = scan.FreeSlots.Count - 1; i >= 0; i--)
            _freeSlots.Push(scan.FreeSlots[i]);
        foreach (int chunk in scan.OrphanedChunks)
            _map.Publish(TableOffset(chunk), 0);
        // Lowest chunk on top, orphans and free ones alike.
        int[] free = [.. scan.FreeChunks, .. scan.OrphanedChunks];
        Array.Sort(free);
        for (int i = free.Length - 1; i >= 0; i--)
            _freeChunks.Push(free[i]);
    }

    private byte[] EncodeName(string name)
    {
        if (string.IsNullOrEmpty(name))
            throw new PmemVolumeException(PmemVolumeError.BadName, "A device name must not be empty.");
        byte[] bytes = VolumeFormat.StrictUtf8.GetBytes(name);
        if (bytes.Length > MaxNameBytes)
            throw new PmemVolumeException(PmemVolumeError.BadName, $"The device name '{name}' is {bytes.Length} UTF-8 bytes; a slot of {Describe(_map)} holds at most {MaxNameBytes}.");
        return bytes;
    }

    private static long AlignUp(long value, long alignment) => (value + alignment - 1) & ~(alignment - 1);

    private static void CheckOptions(PmemVolumeOptions options)
    {
        if (options.ChunkSize is < VolumeFormat.MinChunkSize or > VolumeFormat.MaxChunkSize || !BitOperations.IsPow2(options.ChunkSize))
            throw new ArgumentOutOfRangeException(nameof(options), options.ChunkSize, $"ChunkSize must be a power of two from {VolumeFormat.MinChunkSize} to {VolumeFormat.MaxChunkSize} bytes.");
        if (options.SlotCount is < 1 or > VolumeFormat.MaxSlots)
            throw new ArgumentOutOfRangeException(nameof(options), options.SlotCount, "SlotCount must be from 1 to 1048576.");
    }

    private static PmemVolumeException TooSmall(DaxMapping mapping, PmemVolumeOptions options, long length, long needed) =>
        new(PmemVolumeError.TooSmall, $"{Describe(mapping)}: {length} bytes cannot hold a volume with {options.SlotCount} slots and {options.ChunkSize}-byte chunks: at least {needed} bytes are needed.");

    /// <summary>
    /// Refuses a mapping that starts with the superblock of the old volume format ("DPGRNT01" at offset 0,
    /// written by DirectPmem.Garnet before volumes lived in DirectPmem.Storage pools). It is not migrated.
    /// </summary>
    private static void ThrowIfOldFormat(DaxMapping mapping)
    {
        if (mapping.Length < Page || mapping.GetReadOnlyRef<ulong>(0) != OldFormatMagic)
            return;
        uint version = mapping.GetReadOnlyRef<uint>(8);
        throw new PmemVolumeException(PmemVolumeError.OldFormat,
            $"{Describe(mapping)} holds a DirectPmem.Garnet volume of the old format (superblock \"DPGRNT01\" version {version} at offset 0, " +
            "written before volumes lived in a DirectPmem.Storage pool). This preview does not migrate it: recreate the volume " +
            "(remove the emulated device file, or clear the device's first 4 KiB, and start again; Garnet then starts empty). " +
            "To keep the data, run the old server and let a new one on the new volume replicate it (REPLICAOF), or reload it from its source.");
    }

    /// <summary>Lays out a body of <paramref name="bodyLength"/> bytes (<see cref="VolumeFormat.Plan"/>), or refuses one too small for a chunk.</summary>
    private static VolumeGeometry Plan(DaxMapping mapping, long bodyLength, PmemVolumeOptions options)
    {
        if (VolumeFormat.Plan(bodyLength, options.ChunkSize, options.SlotCount, out long needed) is not VolumeGeometry geometry)
        {
            throw new PmemVolumeException(PmemVolumeError.TooSmall,
                $"{Describe(mapping)}: a {bodyLength}-byte volume body (after the pool's and the volume's headers) cannot hold a volume with {options.SlotCount} slots and {options.ChunkSize}-byte chunks: at least {needed} bytes are needed.");
        }
        return geometry;
    }

    /// <summary>
    /// The sink of the volume's open: the judge's first error is a <see cref="PmemVolumeException"/> (<see cref="PmemVolumeError.Corrupt"/>,
    /// or <see cref="PmemVolumeError.MediaError"/> for unreadable metadata) whose message ends with the judge's sentence, capitalised,
    /// with a stop: the sentence <see cref="PoolInspector.InspectVolume"/> and <c>dpmem check</c> report. Repairable problems
    /// (orphaned chunks) are reclaimed by <see cref="Load"/>.
    /// </summary>
    private sealed class ThrowingVolumeSink(DaxMapping map, string name) : IVolumeProblemSink
    {
        public void Report(VolumeField field, PoolProblemSeverity severity, long offset, string message)
        {
            if (severity != PoolProblemSeverity.Error)
                return;
            throw new PmemVolumeException(field == VolumeField.MediaError ? PmemVolumeError.MediaError : PmemVolumeError.Corrupt,
                $"{Describe(map)} holds a corrupt DirectPmem.Garnet volume \"{name}\" ({field} at offset {offset}): {char.ToUpperInvariant(message[0])}{message[1..]}.");
        }
    }

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);
}
