using System.Diagnostics;
using System.Runtime.CompilerServices;
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

    /// <summary>Makes <c>[offset, offset + length)</c> durable: flush (by <see cref="Granularity"/>) and drain.</summary>
    /// <param name="offset">The first byte, from the start of the mapping.</param>
    /// <param name="length">The number of bytes; 0 persists nothing.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie within the mapping.</exception>
    /// <exception cref="PmemException">The kernel refused to write the pages back (msync).</exception>
    public void Persist(long offset, long length)
    {
        CheckRange(offset, length);
        PersistCore(offset, length);
    }

    private void PersistCore(long offset, long length)
    {
        if (_hook is not null)
        {
            _hook.Flush(offset, length);
            _hook.Drain();
            return;
        }
        switch (Granularity)
        {
            case PersistGranularity.Page:
                MSyncPages(offset, length);
                break;
            case PersistGranularity.None:
                // Volatile memory has nothing to flush; a fence still orders the stores.
                Thread.MemoryBarrier();
                break;
            default:
                throw new NotSupportedException($"Persist at {Granularity} granularity needs the cache-flush layer.");
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
        Volatile.Write(ref _length, 0);
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
