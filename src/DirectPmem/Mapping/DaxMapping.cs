using System.Diagnostics;
using System.Runtime.CompilerServices;
using DirectPmem.Diagnostics;
using DirectPmem.Geometry;
using DirectPmem.Internal;
using DirectPmem.Interop;
using DirectPmem.Persistence;

namespace DirectPmem.Mapping;

/// <summary>
/// A shared mapping of a device, file or memory with device-DAX rules: its offset, length and
/// virtual start address are multiples of its <see cref="PageSize"/>, it is always MAP_SHARED,
/// and a forked child never inherits it (MADV_DONTFORK). Data is reached through spans and refs,
/// bounds-checked against <see cref="Length"/>, and made durable with <see cref="Persist"/>.
/// </summary>
/// <remarks>
/// Spans, refs and <see cref="Memory{T}"/> handed out by a mapping point into the mapped pages:
/// they must not be used after <see cref="Dispose"/>, which unmaps them (a later access would
/// kill the process with SIGSEGV). For file-backed mappings, truncating the file under a live
/// mapping makes access past the new end raise SIGBUS; DirectPmem never truncates a file it
/// has mapped, and holds an advisory lock so that other DirectPmem users do not either.
/// </remarks>
public sealed unsafe class DaxMapping : IDisposable
{
    private readonly SafeMappingHandle _handle;
    private readonly byte* _base;
    // The exposed length; set to 0 on dispose so the single bounds check also refuses use after dispose.
    private long _length;
    private readonly bool _readOnly;
    private int _disposed;
    // Set only for the crash-consistency simulator: flushes and drains go to it instead of the CPU.
    private readonly IPersistenceHook? _hook;
    // Chosen once at construction from the granularity: the flush routine cache-line mappings
    // use (CLWB/CLFLUSHOPT/CLFLUSH), null when the granularity needs no flush instruction.
    private readonly delegate* unmanaged[SuppressGCTransition]<byte*, nuint, void> _flush;

    internal DaxMapping(SafeMappingHandle handle, long length, in MapRequest request, PersistGranularity granularity,
        IPersistenceHook? hook = null)
    {
        _hook = hook;
        Debug.Assert((nuint)length <= handle.ReservedLength);
        _handle = handle;
        _base = (byte*)handle.DangerousGetHandle();
        _length = length;
        _readOnly = request.ReadOnly;
        PageSize = request.PageSize;
        Backing = request.Backing;
        Path = request.Path;
        SourceOffset = request.Offset;
        Granularity = granularity;
        _flush = granularity == PersistGranularity.CacheLine && hook is null ? PersistencePlatform.FlushRoutine : null;
        if (granularity == PersistGranularity.CacheLine && hook is null && _flush == null)
        {
            // MappingFactory never chooses this; refuse rather than silently not flushing.
            handle.Dispose();
            throw new PmemCapabilityException($"cache-line granularity needs a flush routine: {PersistencePlatform.InstructionReason}.");
        }
        Counters.OnMap(PageSize, length);
    }

    /// <summary>
    /// Maps shared anonymous memory (MAP_SHARED | MAP_ANONYMOUS): volatile, performance memory,
    /// with reserved hugetlb pages or transparent huge pages as <see cref="DaxMappingOptions.HugePages"/> asks.
    /// </summary>
    /// <param name="length">The number of bytes; a multiple of the page size.</param>
    /// <param name="options">Page size, huge pages, populate and the rest; <see cref="DaxMappingOptions.Offset"/> must be 0.</param>
    /// <returns>The mapping.</returns>
    /// <exception cref="ArgumentException">The length is not a multiple of the page size.</exception>
    /// <exception cref="PmemCapabilityException">Huge pages were required and cannot be had; the message says how to reserve them.</exception>
    public static DaxMapping CreateAnonymous(long length, DaxMappingOptions? options = null)
        => MappingFactory.CreateAnonymous(length, options ?? DaxMappingOptions.Default);

    /// <summary>The number of bytes mapped; 0 after <see cref="Dispose"/>.</summary>
    public long Length => Volatile.Read(ref _length);

    /// <summary>The mapping's page size: its offset, length and start address are multiples of it.</summary>
    public PageSize PageSize { get; }

    /// <summary>What the mapping is made from.</summary>
    public MappingBacking Backing { get; }

    /// <summary>How the mapping's data is made durable.</summary>
    public PersistGranularity Granularity { get; }

    /// <summary>Whether the mapping is PROT_READ only.</summary>
    public bool IsReadOnly => _readOnly;

    /// <summary>The path of the file or device, or <see langword="null"/> for anonymous memory.</summary>
    public string? Path { get; }

    /// <summary>The offset in the source of the first mapped byte.</summary>
    public long SourceOffset { get; }

    /// <summary>Whether <see cref="Dispose"/> has run.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>The virtual address of the first mapped byte, a multiple of <see cref="PageSize"/>.</summary>
    public nint Address
    {
        get
        {
            ThrowIfDisposed();
            return (nint)_base;
        }
    }

    /// <summary>A writable span over <c>[offset, offset + length)</c>.</summary>
    /// <param name="offset">The first byte, from the start of the mapping.</param>
    /// <param name="length">The number of bytes.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie within the mapping.</exception>
    /// <exception cref="InvalidOperationException">The mapping is read-only.</exception>
    /// <exception cref="ObjectDisposedException">The mapping has been disposed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Span<byte> GetSpan(long offset, int length)
    {
        CheckRange(offset, length);
        if (_readOnly)
        {
            ThrowHelper.ThrowReadOnly();
        }
        return new Span<byte>(_base + offset, length);
    }

    /// <summary>A read-only span over <c>[offset, offset + length)</c>.</summary>
    /// <param name="offset">The first byte, from the start of the mapping.</param>
    /// <param name="length">The number of bytes.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie within the mapping.</exception>
    /// <exception cref="ObjectDisposedException">The mapping has been disposed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ReadOnlySpan<byte> GetReadOnlySpan(long offset, int length)
    {
        CheckRange(offset, length);
        return new ReadOnlySpan<byte>(_base + offset, length);
    }

    /// <summary>A writable reference to the <typeparamref name="T"/> at <paramref name="offset"/>.</summary>
    /// <typeparam name="T">An unmanaged type; <paramref name="offset"/> must be aligned to its natural alignment (capped at 8).</typeparam>
    /// <param name="offset">The first byte, from the start of the mapping.</param>
    /// <exception cref="ArgumentOutOfRangeException">The value does not lie within the mapping.</exception>
    /// <exception cref="ArgumentException"><paramref name="offset"/> is not aligned for <typeparamref name="T"/>.</exception>
    /// <exception cref="InvalidOperationException">The mapping is read-only.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref T GetRef<T>(long offset) where T : unmanaged
    {
        CheckRef<T>(offset);
        if (_readOnly)
        {
            ThrowHelper.ThrowReadOnly();
        }
        return ref Unsafe.AsRef<T>(_base + offset);
    }

    /// <summary>A read-only reference to the <typeparamref name="T"/> at <paramref name="offset"/>.</summary>
    /// <typeparam name="T">An unmanaged type; <paramref name="offset"/> must be aligned to its natural alignment (capped at 8).</typeparam>
    /// <param name="offset">The first byte, from the start of the mapping.</param>
    /// <exception cref="ArgumentOutOfRangeException">The value does not lie within the mapping.</exception>
    /// <exception cref="ArgumentException"><paramref name="offset"/> is not aligned for <typeparamref name="T"/>.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref readonly T GetReadOnlyRef<T>(long offset) where T : unmanaged
    {
        CheckRef<T>(offset);
        return ref Unsafe.AsRef<T>(_base + offset);
    }

    /// <summary>
    /// A <see cref="Memory{T}"/> over <c>[offset, offset + length)</c>, for APIs that take Memory
    /// (streams, pipelines). It allocates a small manager object; use <see cref="GetSpan"/> on hot paths.
    /// </summary>
    /// <param name="offset">The first byte, from the start of the mapping.</param>
    /// <param name="length">The number of bytes.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie within the mapping.</exception>
    /// <exception cref="InvalidOperationException">The mapping is read-only (use <see cref="GetReadOnlyMemory"/>).</exception>
    public Memory<byte> GetMemory(long offset, int length)
    {
        CheckRange(offset, length);
        if (_readOnly)
        {
            ThrowHelper.ThrowReadOnly();
        }
        return new DaxMemoryManager(this, _base + offset, length).Memory;
    }

    /// <summary>A <see cref="ReadOnlyMemory{T}"/> over <c>[offset, offset + length)</c>.</summary>
    /// <param name="offset">The first byte, from the start of the mapping.</param>
    /// <param name="length">The number of bytes.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie within the mapping.</exception>
    public ReadOnlyMemory<byte> GetReadOnlyMemory(long offset, int length)
    {
        CheckRange(offset, length);
        return new DaxMemoryManager(this, _base + offset, length).Memory;
    }

    /// <summary>
    /// The address of the first mapped byte as a raw pointer, for code that must hand it to
    /// native libraries.
    /// </summary>
    /// <remarks>
    /// The pointer is valid for <see cref="Length"/> bytes until <see cref="Dispose"/>; nothing
    /// checks accesses through it. Writing through it into a read-only mapping kills the process.
    /// Data written through it is durable only after <see cref="Persist"/> of the range.
    /// </remarks>
    public byte* DangerousGetPointer()
    {
        ThrowIfDisposed();
        return _base;
    }

    /// <summary>
    /// Makes <c>[offset, offset + length)</c> durable: flush and drain by <see cref="Granularity"/>
    /// (CLWB/CLFLUSHOPT/CLFLUSH + SFENCE for cache-line, SFENCE for byte, msync of the touched
    /// pages for page, a fence only for volatile memory).
    /// </summary>
    /// <param name="offset">The first byte, from the start of the mapping.</param>
    /// <param name="length">The number of bytes; 0 persists nothing.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie within the mapping.</exception>
    /// <exception cref="PmemException">The kernel refused to write the pages back (msync).</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Persist(long offset, long length)
    {
        CheckRange(offset, length);
        PersistCore(offset, length);
    }

    /// <summary>
    /// Starts writing <c>[offset, offset + length)</c> back without waiting (PMDK's pmem2 flush):
    /// the cache lines are flushed for cache-line granularity, the pages msynced for page
    /// granularity, nothing for byte granularity or volatile memory. Durable after <see cref="Drain"/>.
    /// </summary>
    /// <param name="offset">The first byte, from the start of the mapping.</param>
    /// <param name="length">The number of bytes; 0 flushes nothing.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie within the mapping.</exception>
    /// <exception cref="PmemException">The kernel refused to write the pages back (msync).</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Flush(long offset, long length)
    {
        CheckRange(offset, length);
        FlushCore(offset, length);
    }

    /// <summary>Waits until every flush and non-temporal store issued before it is complete (SFENCE; the simulator records a drain).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Drain()
    {
        Counters.OnDrain();
        if (_hook is not null)
        {
            _hook.Drain();
            return;
        }
        CopyEngine.Fence();
    }

    /// <summary>
    /// Copies <paramref name="source"/> to <paramref name="destinationOffset"/> and makes it durable
    /// as <paramref name="flags"/> say (PMDK's pmem2 memcpy): without flags the data is durable on return.
    /// </summary>
    /// <param name="source">The bytes to copy; they may lie in this mapping.</param>
    /// <param name="destinationOffset">Where they go, from the start of the mapping.</param>
    /// <param name="flags">No drain, no flush, non-temporal or temporal stores.</param>
    /// <remarks>
    /// With an 8-byte-aligned destination and a length that is a multiple of 8, no store narrower
    /// than 8 bytes is used: each aligned 8-byte word is either wholly old or wholly new after a
    /// power failure. Under page granularity the copy is temporal and followed by msync unless
    /// <see cref="PmemCopyOptions.NoFlush"/> is given.
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException">The destination range does not lie within the mapping.</exception>
    /// <exception cref="InvalidOperationException">The mapping is read-only.</exception>
    /// <exception cref="PmemException">The kernel refused to write the pages back (msync).</exception>
    public void Write(ReadOnlySpan<byte> source, long destinationOffset, PmemCopyOptions flags = PmemCopyOptions.None)
    {
        CheckWritableRange(destinationOffset, source.Length);
        fixed (byte* from = source)
        {
            MoveCore(from, destinationOffset, source.Length, flags);
        }
    }

    /// <summary>
    /// Copies <paramref name="length"/> bytes within the mapping, the ranges may overlap either way
    /// (PMDK's pmem2 memmove), and makes them durable as <paramref name="flags"/> say.
    /// </summary>
    /// <param name="sourceOffset">The first byte read, from the start of the mapping.</param>
    /// <param name="destinationOffset">The first byte written, from the start of the mapping.</param>
    /// <param name="length">The number of bytes.</param>
    /// <param name="flags">No drain, no flush, non-temporal or temporal stores.</param>
    /// <exception cref="ArgumentOutOfRangeException">A range does not lie within the mapping.</exception>
    /// <exception cref="InvalidOperationException">The mapping is read-only.</exception>
    /// <exception cref="PmemException">The kernel refused to write the pages back (msync).</exception>
    public void Move(long sourceOffset, long destinationOffset, long length, PmemCopyOptions flags = PmemCopyOptions.None)
    {
        CheckRange(sourceOffset, length);
        CheckWritableRange(destinationOffset, length);
        MoveCore(_base + sourceOffset, destinationOffset, length, flags);
    }

    /// <summary>Sets <paramref name="length"/> bytes to <paramref name="value"/> and makes them durable as <paramref name="flags"/> say (PMDK's pmem2 memset).</summary>
    /// <param name="offset">The first byte, from the start of the mapping.</param>
    /// <param name="length">The number of bytes.</param>
    /// <param name="value">The byte to store.</param>
    /// <param name="flags">No drain, no flush, non-temporal or temporal stores.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie within the mapping.</exception>
    /// <exception cref="InvalidOperationException">The mapping is read-only.</exception>
    /// <exception cref="PmemException">The kernel refused to write the pages back (msync).</exception>
    public void Fill(long offset, long length, byte value, PmemCopyOptions flags = PmemCopyOptions.None)
    {
        CheckWritableRange(offset, length);
        Counters.OnCopy(length, flags, Granularity);
        byte* destination = _base + offset;
        if (_hook is not null)
        {
            CopyEngine.TemporalFill(destination, value, (nuint)length);
            ReportToHook(offset, length, flags);
            return;
        }
        if (Granularity == PersistGranularity.Page)
        {
            CopyEngine.Fill(destination, value, (nuint)length, flags | PmemCopyOptions.Temporal | PmemCopyOptions.NoFlush | PmemCopyOptions.NoDrain, null);
            if ((flags & PmemCopyOptions.NoFlush) == 0)
            {
                MSyncPages(offset, length);
            }
            return;
        }
        CopyEngine.Fill(destination, value, (nuint)length, flags, _flush);
    }

    /// <summary>
    /// The failure-atomic commit point of storage layers: stores <paramref name="value"/> at the
    /// 8-byte-aligned <paramref name="offset"/> with one aligned 8-byte store and persists it.
    /// After a power failure the word is either wholly the old value or wholly the new one.
    /// </summary>
    /// <param name="offset">The word's offset, a multiple of 8.</param>
    /// <param name="value">The value to publish.</param>
    /// <exception cref="ArgumentOutOfRangeException">The word does not lie within the mapping.</exception>
    /// <exception cref="ArgumentException"><paramref name="offset"/> is not a multiple of 8.</exception>
    /// <exception cref="InvalidOperationException">The mapping is read-only.</exception>
    /// <exception cref="PmemException">The kernel refused to write the page back (msync).</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Publish(long offset, ulong value)
    {
        CheckRef<ulong>(offset);
        if (_readOnly)
        {
            ThrowHelper.ThrowReadOnly();
        }
        Volatile.Write(ref *(ulong*)(_base + offset), value);
        PersistCore(offset, sizeof(ulong));
    }

    private void MoveCore(byte* source, long destinationOffset, long length, PmemCopyOptions flags)
    {
        Counters.OnCopy(length, flags, Granularity);
        byte* destination = _base + destinationOffset;
        if (_hook is not null)
        {
            // The simulator reads the memory at each reported flush: do the stores, then report
            // what would have been flushed (non-temporal stores count as flushed) and drained.
            CopyEngine.Move(destination, source, (nuint)length, PmemCopyOptions.Temporal | PmemCopyOptions.NoFlush | PmemCopyOptions.NoDrain, null);
            ReportToHook(destinationOffset, length, flags);
            return;
        }
        if (Granularity == PersistGranularity.Page)
        {
            CopyEngine.Move(destination, source, (nuint)length, flags | PmemCopyOptions.Temporal | PmemCopyOptions.NoFlush | PmemCopyOptions.NoDrain, null);
            if ((flags & PmemCopyOptions.NoFlush) == 0)
            {
                MSyncPages(destinationOffset, length);
            }
            return;
        }
        CopyEngine.Move(destination, source, (nuint)length, flags, _flush);
    }

    private void ReportToHook(long offset, long length, PmemCopyOptions flags)
    {
        if ((flags & PmemCopyOptions.NoFlush) == 0 && length != 0)
        {
            _hook!.Flush(offset, length);
        }
        if ((flags & PmemCopyOptions.NoDrain) == 0)
        {
            _hook!.Drain();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void PersistCore(long offset, long length)
    {
        Counters.OnPersist(length);
        if (_hook is not null)
        {
            _hook.Flush(offset, length);
            _hook.Drain();
            return;
        }
        var flush = _flush;
        if (flush != null)
        {
            // SAFETY: CheckRange put [offset, offset + length) inside the live mapping.
            flush(_base + offset, (nuint)length);
            CopyEngine.Fence();
            return;
        }
        PersistSlow(offset, length);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void PersistSlow(long offset, long length)
    {
        switch (Granularity)
        {
            case PersistGranularity.Page:
                MSyncPages(offset, length);
                break;
            case PersistGranularity.Byte:
                CopyEngine.Fence();
                break;
            default:
                // Volatile memory has nothing to flush; a fence still orders the stores.
                Thread.MemoryBarrier();
                break;
        }
    }

    private void FlushCore(long offset, long length)
    {
        Counters.OnFlush(length);
        if (_hook is not null)
        {
            _hook.Flush(offset, length);
            return;
        }
        var flush = _flush;
        if (flush != null)
        {
            flush(_base + offset, (nuint)length);
        }
        else if (Granularity == PersistGranularity.Page)
        {
            MSyncPages(offset, length);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CheckWritableRange(long offset, long length)
    {
        CheckRange(offset, length);
        if (_readOnly)
        {
            ThrowHelper.ThrowReadOnly();
        }
    }

    private void MSyncPages(long offset, long length)
    {
        if (length == 0)
        {
            return;
        }
        long page = Environment.SystemPageSize;
        long start = RangeValidator.AlignDown(offset, page);
        long end = RangeValidator.AlignUp(offset + length, page);
        Counters.OnMSync(end - start);
        SyscallError.Check(Libc.MSync((nint)(_base + start), (nuint)(end - start), Libc.MS_SYNC),
            "msync(MS_SYNC)", Path, SourceOffset + start, end - start);
    }

    /// <summary>
    /// Reads <c>/proc/self/smaps</c> for this mapping and reports the page size the kernel
    /// really backs it with, and whether the DONTFORK flag (<c>dc</c>) is set.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The mapping has been disposed.</exception>
    public PageSizeObservation ObservePageSize()
    {
        ThrowIfDisposed();
        return SmapsReader.Observe((nint)_base, _length);
    }

    /// <summary>Unmaps the region. Idempotent and thread-safe; every span, ref and pointer from it becomes invalid.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        Counters.OnUnmap(PageSize, Interlocked.Exchange(ref _length, 0));
        _handle.Dispose();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CheckRange(long offset, long length)
    {
        // Two unsigned compares: a negative offset or length becomes huge and fails; after
        // dispose _length is 0 and every non-empty range fails too.
        long limit = _length;
        if ((ulong)offset > (ulong)limit || (ulong)length > (ulong)(limit - offset))
        {
            ThrowRangeOrDisposed(offset, length);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CheckRef<T>(long offset) where T : unmanaged
    {
        CheckRange(offset, sizeof(T));
        int alignment = NaturalAlignment<T>();
        if ((offset & (alignment - 1)) != 0)
        {
            ThrowHelper.ThrowMisalignedRef(offset, alignment, typeof(T).Name);
        }
    }

    // The largest power of two dividing sizeof(T), capped at 8 (the x86-64 atomicity unit).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int NaturalAlignment<T>() where T : unmanaged
        => Math.Min(8, 1 << System.Numerics.BitOperations.TrailingZeroCount(sizeof(T)));

    private void ThrowIfDisposed()
    {
        if (IsDisposed)
        {
            ThrowHelper.ThrowObjectDisposed(nameof(DaxMapping));
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowRangeOrDisposed(long offset, long length)
    {
        ThrowIfDisposed();
        ThrowHelper.ThrowOutOfRange(offset, length, _length);
    }
}
