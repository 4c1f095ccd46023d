using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Runtime.CompilerServices;
using DirectPmem.Diagnostics;
using DirectPmem.Geometry;
using DirectPmem.Internal;
using DirectPmem.Interop;
using DirectPmem.Persistence;
using System.Runtime.InteropServices;

namespace DirectPmem.Mapping;

/// <summary>
/// A shared mapping of a device, file or memory with device-DAX rules: its offset, length and
/// virtual start address are multiples of its <see cref="PageSize"/>, it is always MAP_SHARED,
/// and a forked child never inherits it (MADV_DONTFORK). Data is reached through spans and refs,
/// bounds-checked against <see cref="Length"/>, and made durable with <see cref="Persist"/>.
/// </summary>
/// <remarks>
/// <para>
/// Every method is thread-safe, <see cref="Dispose"/> included: an operation racing
/// <see cref="Dispose"/> either completes on the live mapping (Dispose waits for it) or throws
/// <see cref="ObjectDisposedException"/>.
/// </para>
/// <para>
/// Spans, refs, <see cref="Memory{T}"/> and pointers handed out point into the mapped pages and
/// are not tracked: using one after <see cref="Dispose"/> is a bug. Disposed address ranges stay
/// reserved without access for a while (the last 1024 mappings, up to 1 TiB of address space), so
/// such a bug faults (SIGSEGV) instead of reaching memory a later mapping got at the same address.
/// A mapping nobody disposes is never unmapped by the garbage collector (a span may still point
/// into it): it lives until the process ends, counted by <see cref="LiveCount"/>.
/// </para>
/// <para>
/// For file-backed mappings, truncating the file under a live mapping (another program can)
/// makes access past the new end raise SIGBUS; page-granularity persists check the size first
/// and report it. A writable mapping of a file allocates its blocks before it is handed out, so
/// running out of space is an exception, never SIGBUS.
/// </para>
/// </remarks>
public sealed unsafe class DaxMapping : IDisposable
{
    private static long s_live;
    private static long s_lastId;

    private readonly SafeMappingHandle _handle;
    private readonly byte* _base;
    // The exposed length; 0 after dispose.
    private long _length;
    // What the hot paths check a range against, as the exposed length + 1 so that 0 refuses every
    // range, the empty one included: _readLimit is 0 after dispose, _writeLimit also for a
    // read-only mapping. One sign test and one unsigned compare check bounds, use after dispose
    // and (for writers) read-only at once; the out-of-line thrower sorts out which it was.
    private long _readLimit;
    private long _writeLimit;
    // The same limits counted in 8-byte words ((length + 1) / 8 = length / 8, since the length is a
    // multiple of the page size; 0 likewise): an 8-byte ref is checked with one rotate and one compare.
    private long _readWords;
    private long _writeWords;
    private readonly bool _readOnly;
    // Names this mapping in the operation slots (a number, not a reference: publishing it is a
    // plain store, without the GC write barrier a reference store needs).
    private readonly long _id;
    // Chosen once at construction from the granularity (or supplied by the source): every flush,
    // drain, persist, copy and fill goes through it.
    private readonly PersistOps _ops;
    // _ops.CopiesThroughEngine and _ops.EngineFlush, read once: Write may then run the copy engine itself.
    private readonly bool _copiesThroughEngine;
    private readonly delegate* unmanaged[SuppressGCTransition]<byte*, nuint, void> _engineFlush;
    // The region's deep_flush, resolved when the mapping was made (null: no region), and the one
    // result every DeepFlush returns.
    private readonly DeepFlushControl? _deepFlush;
    private readonly DeepFlushResult _deepFlushResult;
    // What the mapping was made from: asked for the source's bad ranges.
    private readonly MapSource _source;

    // The descriptor the source's bad-range list is read through, referenced until Dispose (null for memory and devices).
    private readonly SafeFileDescriptor? _listDescriptor;
    private int _disposed;
    // Keeps the mapping (and so its SafeHandle) reachable until Dispose: the GC must never unmap
    // memory a span may still point into.
    private GCHandle<DaxMapping> _root;

    static DaxMapping()
    {
        AppDomain.CurrentDomain.ProcessExit += static (_, _) =>
        {
            long live = Volatile.Read(ref s_live);
            if (live > 0)
            {
                Trace.TraceWarning($"DirectPmem: {live} DaxMapping(s) were never disposed; they stayed mapped until the process ended.");
            }
        };
    }

    internal DaxMapping(SafeMappingHandle handle, in MapRequest request, PersistOps ops, DeepFlushControl? deepFlush)
    {
        Debug.Assert((nuint)request.Length <= handle.ReservedLength);
        // The ref checks count the length in units of 2, 4 and 8 bytes: Mapper validated it to be a
        // multiple of the page size, so those divisions are exact.
        Debug.Assert(request.Length > 0 && request.Length % Environment.SystemPageSize == 0, "a mapping's length is a multiple of the page size");
        _handle = handle;
        _base = (byte*)handle.DangerousGetHandle();
        _length = request.Length;
        _readOnly = request.ReadOnly;
        _readLimit = request.Length + 1;
        _writeLimit = request.ReadOnly ? 0 : request.Length + 1;
        _readWords = request.Length / sizeof(long);
        _writeWords = request.ReadOnly ? 0 : request.Length / sizeof(long);
        _id = Interlocked.Increment(ref s_lastId);
        _ops = ops;
        _copiesThroughEngine = ops.CopiesThroughEngine;
        _engineFlush = ops.EngineFlush;
        PageSize = request.PageSize;
        Backing = request.Source.Backing;
        Path = request.Path;
        SourceOffset = request.SourceOffset;
        Granularity = ops.Granularity;
        _source = request.Source;
        // The bad-range list of a file is read through its descriptor (FIEMAP): referenced for the
        // mapping's life, so GetBadRanges works after the PmemFile is disposed (what `dpmem check`
        // does: it keeps only the mapping). Mapper.Map has just used the descriptor; if the file was
        // disposed on another thread since, this throws ObjectDisposedException and the factory
        // unmaps.
        if (request.Source.ListDescriptor is { } listDescriptor)
        {
            bool added = false;
            listDescriptor.DangerousAddRef(ref added);
            _listDescriptor = listDescriptor;
        }
        _deepFlush = deepFlush;
        _deepFlushResult = deepFlush is null
            ? DeepFlushResult.NoRegion
            : new DeepFlushResult(
                deepFlush.AttributePath is null ? DeepFlushOutcome.AttributeAbsent
                    : deepFlush.Writable ? DeepFlushOutcome.RegionFlushed : DeepFlushOutcome.AttributeReadOnly,
                deepFlush.RegionName, deepFlush.RegionPath, deepFlush.AttributePath);
        _root = new GCHandle<DaxMapping>(this);
        Interlocked.Increment(ref s_live);
        Counters.OnMap(PageSize, request.Length);
    }

    /// <summary>
    /// The number of mappings created and not yet disposed in this process. A mapping that is
    /// never disposed stays mapped (the garbage collector does not unmap it) and a warning is
    /// traced when the process exits.
    /// </summary>
    public static long LiveCount => Volatile.Read(ref s_live);

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

    /// <summary>
    /// The NVDIMM region behind the mapping (<c>region0</c>), resolved once when the mapping was made (the
    /// region <see cref="DeepFlush"/> flushes), or <see langword="null"/> when there is none (memory, files off pmem).
    /// </summary>
    public string? NvdimmRegion => _deepFlushResult.Region;

    /// <summary>The offset in the source of the first mapped byte.</summary>
    public long SourceOffset { get; }

    /// <summary>
    /// The known bad ranges (media errors) of the mapped window, in offsets from the mapping's first
    /// byte: the source's list (<see cref="PmemFile.GetBadRanges"/>, or the device's) cut to
    /// <c>[SourceOffset, SourceOffset + Length)</c>. Read fresh at every call; a load from a listed
    /// range raises SIGBUS.
    /// </summary>
    /// <returns>The ranges and how complete they are; anonymous memory and memfds have no list. A file's list is read through the descriptor the mapping keeps open, also after its <see cref="PmemFile"/> was disposed.</returns>
    /// <exception cref="ObjectDisposedException">The mapping has been disposed.</exception>
    /// <exception cref="PmemException">A system call failed.</exception>
    public BadRangeReport GetBadRanges()
    {
        ThrowIfDisposed();
        // The mapping's own reference keeps the descriptor open until Dispose; this one covers a
        // Dispose racing the read (then the add fails with ObjectDisposedException, or the read
        // finishes on a descriptor that is still open).
        SafeFileDescriptor? fd = _listDescriptor;
        bool added = false;
        try
        {
            fd?.DangerousAddRef(ref added);
            return _source.BadRanges().Window(SourceOffset, Length,
                string.Create(System.Globalization.CultureInfo.InvariantCulture, $"offsets from the mapping's first byte (source offset 0x{SourceOffset:x})"));
        }
        finally
        {
            if (added)
            {
                fd!.DangerousRelease();
            }
        }
    }

    /// <summary>Whether <see cref="Dispose"/> has run.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>A writable span over <c>[offset, offset + length)</c>.</summary>
    /// <param name="offset">The first byte, from the start of the mapping.</param>
    /// <param name="length">The number of bytes.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie within the mapping.</exception>
    /// <exception cref="InvalidOperationException">The mapping is read-only.</exception>
    /// <exception cref="ObjectDisposedException">The mapping has been disposed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Span<byte> GetSpan(long offset, int length)
    {
        CheckWritableRange(offset, length);
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
    /// <exception cref="ObjectDisposedException">The mapping has been disposed.</exception>
    /// <remarks>
    /// The check (sign, alignment and bounds, which also refuses a disposed or read-only mapping) is
    /// inlined into the caller: for a 2-, 4- or 8-byte <typeparamref name="T"/> one rotate and one
    /// compare against a field. In a loop of random accesses bound by cache misses it still costs
    /// some memory-level parallelism (about 9 % for <c>GetRef&lt;long&gt;</c> on an AMD EPYC Zen 2,
    /// see bench/README.md); a loop that cannot afford it can take <see cref="DangerousGetPointer"/>
    /// and check its own offsets.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref T GetRef<T>(long offset) where T : unmanaged
    {
        CheckWritableRef<T>(offset);
        return ref Unsafe.AsRef<T>(_base + offset);
    }

    /// <summary>A read-only reference to the <typeparamref name="T"/> at <paramref name="offset"/>.</summary>
    /// <typeparam name="T">An unmanaged type; <paramref name="offset"/> must be aligned to its natural alignment (capped at 8).</typeparam>
    /// <param name="offset">The first byte, from the start of the mapping.</param>
    /// <exception cref="ArgumentOutOfRangeException">The value does not lie within the mapping.</exception>
    /// <exception cref="ArgumentException"><paramref name="offset"/> is not aligned for <typeparamref name="T"/>.</exception>
    /// <exception cref="ObjectDisposedException">The mapping has been disposed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref readonly T GetReadOnlyRef<T>(long offset) where T : unmanaged
    {
        CheckRef<T>(offset);
        return ref Unsafe.AsRef<T>(_base + offset);
    }

    /// <summary>
    /// Copies <c>[offset, offset + destination.Length)</c> into <paramref name="destination"/> with
    /// the poison-safe copy: a media error (poison, SIGBUS <c>BUS_MCEERR_AR</c>) or a page past the
    /// end of a truncated file (SIGBUS <c>BUS_ADRERR</c>) ends the read with
    /// <see cref="PmemMediaErrorException"/> instead of ending the process.
    /// </summary>
    /// <param name="offset">The first byte, from the start of the mapping.</param>
    /// <param name="destination">Where the bytes go; its length is the number of bytes read.</param>
    /// <remarks>
    /// <para>
    /// A load through a span, a ref or a pointer into the mapping that meets poison or a truncated
    /// page is not safe: the kernel raises SIGBUS, and the .NET runtime ends the process (see the
    /// README, "Media errors"). Read through this method wherever the data may be bad: recovery,
    /// validation, scrubbing, reads of data that came from another program.
    /// </para>
    /// <para>
    /// The first call in a process installs a SIGBUS and SIGSEGV handler (machine code, chained to
    /// the handlers that were there before: every signal that did not come from a load of this copy
    /// reaches the runtime or the default action exactly as before). The copy costs one call
    /// through a function pointer; bench/README.md has its cost against <see cref="Span{T}.CopyTo"/>.
    /// Each call pins <paramref name="destination"/>; a loop of small reads into a buffer it pinned once
    /// can save that with <see cref="DangerousReadSafe"/>.
    /// </para>
    /// </remarks>
    /// <exception cref="PmemMediaErrorException">
    /// A byte of the range could not be read. The exception names the kind, the bad offset and
    /// length (in the mapping and in the source) and how many bytes were read before it.
    /// </exception>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie within the mapping.</exception>
    /// <exception cref="PmemCapabilityException">The safe copy is unavailable in this process (<see cref="IsReadSafeSupported"/>; the message says why).</exception>
    /// <exception cref="PmemException">The mapping's pages were unmapped or protected behind its back (through <see cref="DangerousGetPointer"/>).</exception>
    /// <exception cref="ObjectDisposedException">The mapping has been disposed, before or during the read.</exception>
    // Inlined, with one call on its path and nothing after it but one test: at 64 B a call frame,
    // a zeroed fault record or values kept alive for the error path cost more than the copy
    // (bench/README.md, "Poison-safe read"). Long copies and faults go out of line.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    [SkipLocalsInit]
    public void ReadSafe(long offset, Span<byte> destination)
    {
        CheckReadSafeRange(offset, destination.Length);
        if (SafeCopy.Routine == null)
        {
            ThrowSafeCopyUnavailable();
        }
        if ((uint)destination.Length > SafeCopy.MaxPiece)
        {
            ReadSafeInPieces(offset, destination);
            return;
        }
        nuint notCopied;
        SafeCopy.Fault fault;
        // Pinned through its reference, not `fixed (byte* to = destination)`: that form tests for an
        // empty span first (to pass null), a branch and a register more per call; at 64 B under load
        // this was ReadSafe/plain 1.06 against 1.00 (bench/README.md, "Poison-safe read"). An empty
        // span's reference may be null or just past an array; the routine touches no byte of a
        // zero-length destination, so either is fine (dotnet/runtime pins spans the same way).
        fixed (byte* to = &MemoryMarshal.GetReference(destination))
        {
            // SAFETY: CheckRange put the source inside the mapping; the destination is pinned. No
            // operation slot is taken (it would cost more than the copy at 64 B): a Dispose racing
            // the copy leaves a PROT_NONE reservation, and a load from it faults inside the routine
            // (SIGSEGV) and returns here as a short copy like any other fault.
            notCopied = SafeCopy.CopyPiece(to, _base + offset, (nuint)destination.Length, &fault);
        }
        // Dispose sets _disposed before it unmaps. The copy's loads come before this load (a call
        // the JIT cannot move loads across, and x86 never reorders loads with loads): reading 0 here
        // means the range was still mapped when the copy read it. Reading 1, the bytes may come
        // from whatever was at the address by then, and they are thrown away.
        if ((notCopied | (nuint)Volatile.Read(ref _disposed)) != 0)
        {
            ReadSafeFailed(offset, destination, notCopied, ref fault);
        }
    }

    /// <summary>
    /// <see cref="ReadSafe"/> into memory the caller keeps in place: the same poison-safe copy of
    /// <c>[offset, offset + length)</c>, with the same checks of the source range and of
    /// <see cref="Dispose"/>, to a destination given as a pointer instead of a span.
    /// </summary>
    /// <param name="offset">The first byte, from the start of the mapping.</param>
    /// <param name="destination">Where the bytes go: <paramref name="length"/> writable bytes that do not move during the call.</param>
    /// <param name="length">The number of bytes read.</param>
    /// <remarks>
    /// <para>
    /// The fast path for a loop of small reads: <see cref="ReadSafe"/> pins its span for every call,
    /// and at 64 B that pin is most of its cost beyond the copy (about 0.9 ns of a 5.1 ns read on an
    /// AMD EPYC Zen 2; bench/README.md, "Poison-safe read"). A caller that reads into a buffer it pinned
    /// once (a <c>fixed</c> block around the loop, native memory, a pinned array) saves it here.
    /// </para>
    /// <para>
    /// Nothing checks <paramref name="destination"/>: it must point to <paramref name="length"/>
    /// writable bytes that stay where they are until the call returns (pinned, on the stack or
    /// native). Everything else is as <see cref="ReadSafe"/>: the source range is checked before any
    /// access, use after (or during) <see cref="Dispose"/> throws <see cref="ObjectDisposedException"/>,
    /// and a media error or a truncated page in the source ends the read with
    /// <see cref="PmemMediaErrorException"/> after the bytes before it were copied. A fault at the
    /// destination is not a media error of the mapping: it is reported as a <see cref="PmemException"/>
    /// naming the destination address.
    /// </para>
    /// </remarks>
    /// <exception cref="PmemMediaErrorException">A byte of the range could not be read (as <see cref="ReadSafe"/>).</exception>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie within the mapping, or <paramref name="length"/> is negative.</exception>
    /// <exception cref="PmemCapabilityException">The safe copy is unavailable in this process (<see cref="IsReadSafeSupported"/>; the message says why).</exception>
    /// <exception cref="PmemException">The destination could not be written, or the mapping's pages were unmapped or protected behind its back.</exception>
    /// <exception cref="ObjectDisposedException">The mapping has been disposed, before or during the read.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    [SkipLocalsInit]
    public void DangerousReadSafe(long offset, byte* destination, int length)
    {
        CheckReadSafeRange(offset, length);
        if (SafeCopy.Routine == null)
        {
            ThrowSafeCopyUnavailable();
        }
        if ((uint)length > SafeCopy.MaxPiece)
        {
            ReadSafeInPieces(offset, destination, length);
            return;
        }
        SafeCopy.Fault fault;
        // SAFETY: CheckRange put the source inside the mapping; the caller keeps the destination
        // writable and in place (the contract above). No operation slot, as in ReadSafe.
        nuint notCopied = SafeCopy.CopyPiece(destination, _base + offset, (nuint)length, &fault);
        // As in ReadSafe: the disposed flag after the copy's loads.
        if ((notCopied | (nuint)Volatile.Read(ref _disposed)) != 0)
        {
            ReadSafeFailed(offset, destination, length, notCopied, ref fault);
        }
    }

    // CheckRange for ReadSafe's int length, with the limit loaded last: the shape that measured
    // fastest around a 64 B read (the shared CheckRange's long length and limit-first load cost
    // 0.45 ns of 5.1 there, idle: ReadSafe/plain 1.000 against 1.088). The failure is a `throw` in the
    // caller's code, as in CheckRange.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CheckReadSafeRange(long offset, int length)
    {
        if (offset < 0 || length < 0 || (ulong)(offset + length) >= (ulong)_readLimit)
        {
            throw BadRange(offset, length, writable: false);
        }
    }

    // A fault, or a Dispose during the copy, in ReadSafe: the same for the pinned span.
    [MethodImpl(MethodImplOptions.NoInlining)]
    [DoesNotReturn]
    private void ReadSafeFailed(long offset, Span<byte> destination, nuint notCopied, ref SafeCopy.Fault fault)
    {
        fixed (byte* to = destination)
        {
            ReadSafeFailed(offset, to, destination.Length, notCopied, ref fault);
        }
    }

    // A fault, or a Dispose during the copy: copies the readable bytes before the fault, then
    // throws (ObjectDisposedException first: after a Dispose the fault may be its PROT_NONE).
    [MethodImpl(MethodImplOptions.NoInlining)]
    [DoesNotReturn]
    private void ReadSafeFailed(long offset, byte* to, int length, nuint notCopied, ref SafeCopy.Fault fault)
    {
        if (notCopied != 0)
        {
            notCopied = SafeCopy.CopyUpToFault(to, _base + offset, (nuint)length, notCopied, ref fault);
        }
        if (Volatile.Read(ref _disposed) != 0)
        {
            ThrowHelper.ThrowObjectDisposed(nameof(DaxMapping));
        }
        ThrowFault(offset, length, (long)notCopied, fault);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ReadSafeInPieces(long offset, Span<byte> destination)
    {
        fixed (byte* to = destination)
        {
            ReadSafeInPieces(offset, to, destination.Length);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ReadSafeInPieces(long offset, byte* to, int length)
    {
        // SAFETY: as in ReadSafe; the caller keeps the destination in place.
        nuint notCopied = SafeCopy.Copy(to, _base + offset, (nuint)length, out SafeCopy.Fault fault);
        // As in ReadSafe: the disposed flag after the copy's loads.
        if (Volatile.Read(ref _disposed) != 0)
        {
            ThrowHelper.ThrowObjectDisposed(nameof(DaxMapping));
        }
        if (notCopied != 0)
        {
            ThrowFault(offset, length, (long)notCopied, fault);
        }
    }

    /// <summary>
    /// Whether <see cref="ReadSafe"/> works in this process: it needs x86-64, executable memory for
    /// its generated code (not disabled with <c>DIRECTPMEM_NO_GENERATED_CODE=1</c>) and its SIGBUS and
    /// SIGSEGV handler. Reading this property installs the handler.
    /// </summary>
    public static bool IsReadSafeSupported => SafeCopy.Routine != null;

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowSafeCopyUnavailable()
        => throw new PmemCapabilityException($"The poison-safe copy is unavailable in this process: {SafeCopy.Failure}.");

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowFault(long offset, long length, long notCopied, SafeCopy.Fault fault)
    {
        long bytesRead = length - notCopied;
        long faultOffset = (long)((byte*)fault.Address - _base);
        if (faultOffset < offset || faultOffset >= offset + length)
        {
            // The routine's stores fault too: the destination was not writable memory (a span over
            // memory unmapped or truncated under it, or a bad pointer given to DangerousReadSafe).
            throw new PmemException(string.Create(CultureInfo.InvariantCulture,
                $"ReadSafe of {length} bytes at mapping offset 0x{offset:x} of '{Path ?? "anonymous memory"}' could not write its destination: " +
                $"{(fault.Signal == Libc.SIGSEGV ? "SIGSEGV" : "SIGBUS")} code {fault.Code} at address 0x{fault.Address:x}, outside the mapping's range being read; {bytesRead} bytes were copied before it."));
        }
        if (fault.Signal == Libc.SIGSEGV)
        {
            // Not disposed (checked first), yet unmapped or inaccessible: the pages were unmapped or
            // protected behind the mapping's back (munmap or mprotect through DangerousGetPointer).
            throw new PmemException(string.Create(CultureInfo.InvariantCulture,
                $"ReadSafe of {length} bytes at mapping offset 0x{offset:x} of '{Path ?? "anonymous memory"}' met memory that is unmapped or has no read access " +
                $"(SIGSEGV code {fault.Code}) at mapping offset 0x{faultOffset:x}: something unmapped or protected the mapping's pages; {bytesRead} bytes were read before it."));
        }
        // BUS_ADRERR is the kernel's answer both for a page past the end of the file and for a page
        // inside it that it could not provide (a DAX file system's known bad block, a page-cache read
        // error): the file's size now tells them apart.
        MediaErrorKind kind = fault.Code == Libc.BUS_MCEERR_AR ? MediaErrorKind.Poison
            : SourceOffset + faultOffset < _source.CurrentSize() ? MediaErrorKind.IoError
            : MediaErrorKind.BeyondEndOfFile;
        long badOffset;
        long badLength;
        if (kind == MediaErrorKind.Poison)
        {
            // The kernel reports the bad unit as 2^lsb bytes (a page for memory-failure handling); 0 means not said: assume a page.
            int lsb = fault.AddressLsb;
            badLength = lsb is > 0 and < 63 ? 1L << lsb : Environment.SystemPageSize;
            badOffset = faultOffset & ~(badLength - 1);
        }
        else if (kind == MediaErrorKind.IoError)
        {
            badLength = Environment.SystemPageSize;
            badOffset = faultOffset & ~(badLength - 1);
        }
        else
        {
            badOffset = faultOffset;
            badLength = offset + length - faultOffset;
        }
        string what = kind switch
        {
            MediaErrorKind.Poison => "a media error (poison, SIGBUS BUS_MCEERR_AR)",
            MediaErrorKind.IoError => "a page the kernel could not provide (SIGBUS BUS_ADRERR below the end of the file or device: " +
                "a known bad block of a DAX file system, which GetBadRanges lists and PmemFile.ClearBadRange clears, an I/O error, " +
                "or no free huge page for a hugetlb mapping)",
            _ => "a page past the end of the file (truncated under the mapping, SIGBUS BUS_ADRERR)",
        };
        string message = string.Create(CultureInfo.InvariantCulture,
            $"ReadSafe of {length} bytes at mapping offset 0x{offset:x} of '{Path ?? "anonymous memory"}' met {what}: " +
            $"0x{badLength:x} bytes bad at mapping offset 0x{badOffset:x} (source offset 0x{SourceOffset + badOffset:x}); " +
            $"{bytesRead} bytes were read before it.");
        throw new PmemMediaErrorException(message, kind, Path, offset, length, bytesRead, badOffset, badLength, SourceOffset + badOffset);
    }

    /// <summary>
    /// A <see cref="Memory{T}"/> over <c>[offset, offset + length)</c>, for APIs that take Memory
    /// (streams, pipelines). It allocates a small manager object; use <see cref="GetSpan"/> on hot paths.
    /// </summary>
    /// <param name="offset">The first byte, from the start of the mapping.</param>
    /// <param name="length">The number of bytes.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie within the mapping.</exception>
    /// <exception cref="InvalidOperationException">The mapping is read-only (use <see cref="GetReadOnlyMemory"/>).</exception>
    /// <exception cref="ObjectDisposedException">The mapping has been disposed.</exception>
    public Memory<byte> GetMemory(long offset, int length)
    {
        CheckWritableRange(offset, length);
        return new DaxMemoryManager(this, _base + offset, length).Memory;
    }

    /// <summary>A <see cref="ReadOnlyMemory{T}"/> over <c>[offset, offset + length)</c>.</summary>
    /// <param name="offset">The first byte, from the start of the mapping.</param>
    /// <param name="length">The number of bytes.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie within the mapping.</exception>
    /// <exception cref="ObjectDisposedException">The mapping has been disposed.</exception>
    public ReadOnlyMemory<byte> GetReadOnlyMemory(long offset, int length)
    {
        CheckRange(offset, length);
        return new DaxMemoryManager(this, _base + offset, length).Memory;
    }

    /// <summary>
    /// The address of the first mapped byte as a raw pointer, for code that must hand it to
    /// native libraries.
    /// </summary>
    /// <returns>The first mapped byte, aligned to <see cref="PageSize"/>.</returns>
    /// <remarks>
    /// The pointer is valid for <see cref="Length"/> bytes until <see cref="Dispose"/>; nothing
    /// checks accesses through it. Writing through it into a read-only mapping, or using it after
    /// <see cref="Dispose"/>, kills the process. Data written through it is durable only after
    /// <see cref="Persist"/> of the range.
    /// </remarks>
    /// <exception cref="ObjectDisposedException">The mapping has been disposed.</exception>
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
    /// <exception cref="PmemException">The kernel refused to write the pages back (msync), or the file was truncated under the mapping by another program.</exception>
    /// <exception cref="ObjectDisposedException">The mapping has been disposed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Persist(long offset, long length)
    {
        CheckRange(offset, length);
        OperationSlots slot = Enter();
        try
        {
            // SAFETY: CheckRange put [offset, offset + length) inside the mapping, and Enter keeps it mapped.
            Counters.OnPersist(length);
            _ops.Persist(_base + offset, (nuint)length);
        }
        finally
        {
            slot.Exit();
        }
    }

    /// <summary>
    /// Persists <c>[offset, offset + length)</c> like <see cref="Persist"/> and then flushes the
    /// memory controller's write-pending queues of the NVDIMM region behind the mapping (PMDK's
    /// <c>pmem2_deep_flush</c>): it writes <c>1</c> to the region's <c>deep_flush</c> sysfs
    /// attribute, which makes the kernel write the region's flush hints. Use it where data must
    /// survive even on a platform whose persistence domain does not include those queues, and at
    /// rare points (closing a pool): it costs a system call.
    /// </summary>
    /// <param name="offset">The first byte, from the start of the mapping.</param>
    /// <param name="length">The number of bytes; 0 persists nothing but still flushes the region.</param>
    /// <returns>What was done, and which region: the same object for every call on this mapping.</returns>
    /// <remarks>
    /// <para>The region is found once, when the mapping is made: for a device-DAX device through
    /// <c>/sys/dev/char/MAJ:MIN</c>, for a file through <c>/sys/dev/block/MAJ:MIN</c> of its file
    /// system's device (a partition's disk included), as the nearest <c>regionN</c> above it. The
    /// attribute is written only when it exists and is writable: the kernel hides it when the
    /// region's flush mechanism is unknown and makes it read-only (reading <c>0</c>) when the platform
    /// has no flush hints, where the cache flush alone reaches the persistence domain. Without a
    /// region (anonymous memory, tmpfs, hugetlb, a memfd, a file on a disk, an emulated device on
    /// one of those) the range is persisted only. <see cref="DeepFlushResult.Outcome"/> says which.</para>
    /// <para>On files PMDK relies on msync, whose fsync flushes the region through the block layer;
    /// here a page-cache file is msynced (as <see cref="Persist"/> does), an fsdax file's cache lines
    /// are flushed, and either way the region's <c>deep_flush</c> is written when it can be.</para>
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie within the mapping; nothing was flushed.</exception>
    /// <exception cref="PmemException">
    /// The kernel refused to write the pages back (msync); or opening or writing <c>deep_flush</c>
    /// failed (the message names the call, the errno and the attribute) after the range was
    /// persisted: nothing durable is lost, the queues were not flushed.
    /// </exception>
    /// <exception cref="ObjectDisposedException">The mapping has been disposed.</exception>
    public DeepFlushResult DeepFlush(long offset, long length)
    {
        Persist(offset, length);
        if (_deepFlush is { Writable: true } control)
        {
            // Only sysfs is touched from here on: the mapping may be disposed concurrently.
            control.Write();
        }
        return _deepFlushResult;
    }

    /// <summary>
    /// Starts writing <c>[offset, offset + length)</c> back without waiting (PMDK's pmem2 flush):
    /// the cache lines are flushed for cache-line granularity, the pages msynced for page
    /// granularity, nothing for byte granularity or volatile memory. Durable after <see cref="Drain"/>.
    /// </summary>
    /// <param name="offset">The first byte, from the start of the mapping.</param>
    /// <param name="length">The number of bytes; 0 flushes nothing.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie within the mapping.</exception>
    /// <exception cref="PmemException">The kernel refused to write the pages back (msync), or the file was truncated under the mapping by another program.</exception>
    /// <exception cref="ObjectDisposedException">The mapping has been disposed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Flush(long offset, long length)
    {
        CheckRange(offset, length);
        OperationSlots slot = Enter();
        try
        {
            Counters.OnFlush(length);
            _ops.Flush(_base + offset, (nuint)length);
        }
        finally
        {
            slot.Exit();
        }
    }

    /// <summary>
    /// Waits until every flush and non-temporal store issued before it is complete: SFENCE for
    /// byte, cache-line and volatile mappings; nothing for page granularity, whose flush (msync)
    /// has already waited.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The mapping has been disposed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Drain()
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            ThrowHelper.ThrowObjectDisposed(nameof(DaxMapping));
        }
        Counters.OnDrain();
        _ops.Drain();
    }

    /// <summary>
    /// Copies <paramref name="source"/> to <paramref name="destinationOffset"/> and makes it durable
    /// as <paramref name="flags"/> say (PMDK's pmem2 memcpy): without flags the data is durable on return.
    /// </summary>
    /// <param name="source">The bytes to copy; they may lie in this mapping.</param>
    /// <param name="destinationOffset">Where they go, from the start of the mapping.</param>
    /// <param name="flags">No drain, no flush, non-temporal or temporal stores; undefined bits are refused.</param>
    /// <remarks>
    /// With an 8-byte-aligned destination and a length that is a multiple of 8, no store narrower
    /// than 8 bytes is used: each aligned 8-byte word is either wholly old or wholly new after a
    /// power failure. Under page granularity the copy is temporal and followed by msync unless
    /// <see cref="PmemCopyOptions.NoFlush"/> is given.
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException">The destination range does not lie within the mapping.</exception>
    /// <exception cref="InvalidOperationException">The mapping is read-only.</exception>
    /// <exception cref="PmemException">The kernel refused to write the pages back (msync), or the file was truncated under the mapping by another program.</exception>
    /// <exception cref="ObjectDisposedException">The mapping has been disposed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write(ReadOnlySpan<byte> source, long destinationOffset, PmemCopyOptions flags = PmemCopyOptions.None)
    {
        CheckWritableRange(destinationOffset, source.Length);
        PersistOps.ValidateCopyOptions(flags, nameof(flags));
        Counters.OnCopy(source.Length, flags, Granularity);
        // Enter, written out: the slot is looked up before the mapping's id is read (so the id is
        // not kept on the stack across the thread-static lookup's call), and the disposed branch
        // ends in a call the JIT knows never returns (so the slot is not kept there either).
        OperationSlots slot = OperationSlots.ForThisThread();
        slot.Publish(_id);
        if (Volatile.Read(ref _disposed) != 0)
        {
            slot.Exit();
            ThrowHelper.ThrowObjectDisposed(nameof(DaxMapping));
        }
        byte* destination = _base + destinationOffset;
        nuint length = (nuint)source.Length;
        ref byte from = ref MemoryMarshal.GetReference(source);
        // The address is only compared: a managed source that moves is never inside the mapping.
        nuint fromAddress = (nuint)Unsafe.AsPointer(ref from);
        if (_copiesThroughEngine && (nuint)destination - fromAddress >= length && fromAddress >= NullArea)
        {
            if (CopyEngine.IsWholeLineStream(destination, length, flags))
            {
                WriteStream(slot, destination, ref from, length, flags);
                return;
            }
            if (CopyEngine.IsTemporal(length, flags))
            {
                WriteTemporal(slot, destination, ref from, length, flags);
                return;
            }
        }
        WriteThroughOps(slot, destination, source, flags);
    }

    // .NET turns a fault below this address in managed code into a NullReferenceException, which
    // can be caught; any other fault on a source kills the process. A source that starts at or above
    // it cannot fault into an exception.
    private const nuint NullArea = 64 * 1024;

    // WriteStream and WriteTemporal are the mapping's operations object's Copy (the copy engine,
    // then a fence) written out, for the two common shapes: whole lines of non-temporal stores (an
    // aligned copy of at least the threshold, as a 256 B-and-up record), and temporal stores plus
    // one flush below the threshold. Nothing but the copy, the flush routine and the fence runs
    // between publishing the slot and clearing it, and no try block. Why: every store a thread
    // makes before the copy's stores waits in the store queue behind the previous operation's
    // SFENCE, so the stack stores that a call or a finally forces (the slot, the pinned source,
    // the values the copy's calls keep, a frame's pushes) were on the critical path: about 4 ns of
    // the 256 B Write (bench/README, "Fifth round").
    // Why the slot is always cleared without a finally: nothing here throws. The destination
    // range was checked and the mapping cannot be unmapped before slot.Exit(); the source is read
    // through a reference (no pin); Write sends a source below NullArea, the only one whose fault
    // is an exception, through WriteThroughOps; the flush routine is generated code that only
    // flushes. No user code and no allocation runs.
    // SAFETY: the destination does not start inside the source (the caller's check), so a forward
    // copy never overwrites a source byte before reading it (each block is loaded before it is
    // stored, which covers a destination below an overlapping source).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WriteStream(OperationSlots slot, byte* destination, ref byte from, nuint length, PmemCopyOptions flags)
    {
        CopyEngine.StreamLinesForward(destination, ref from, length);
        if ((flags & PmemCopyOptions.NoDrain) == 0)
        {
            PersistOps.StoreFence();
        }
        slot.Exit();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WriteTemporal(OperationSlots slot, byte* destination, ref byte from, nuint length, PmemCopyOptions flags)
    {
        CopyEngine.TemporalForward(destination, ref from, length);
        var flush = _engineFlush;
        if (flush != null && (flags & PmemCopyOptions.NoFlush) == 0)
        {
            flush(destination, length);
        }
        if ((flags & PmemCopyOptions.NoDrain) == 0)
        {
            PersistOps.StoreFence();
        }
        slot.Exit();
    }

    // Every other copy: the mapping's operations object, with the slot cleared however it ends.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void WriteThroughOps(OperationSlots slot, byte* destination, ReadOnlySpan<byte> source, PmemCopyOptions flags)
    {
        try
        {
            fixed (byte* from = source)
            {
                _ops.Copy(destination, from, (nuint)source.Length, flags);
            }
        }
        finally
        {
            slot.Exit();
        }
    }

    /// <summary>
    /// Copies <paramref name="length"/> bytes within the mapping, the ranges may overlap either way
    /// (PMDK's pmem2 memmove), and makes them durable as <paramref name="flags"/> say.
    /// </summary>
    /// <param name="sourceOffset">The first byte read, from the start of the mapping.</param>
    /// <param name="destinationOffset">The first byte written, from the start of the mapping.</param>
    /// <param name="length">The number of bytes.</param>
    /// <param name="flags">No drain, no flush, non-temporal or temporal stores; undefined bits are refused.</param>
    /// <exception cref="ArgumentOutOfRangeException">A range does not lie within the mapping.</exception>
    /// <exception cref="InvalidOperationException">The mapping is read-only.</exception>
    /// <exception cref="PmemException">The kernel refused to write the pages back (msync), or the file was truncated under the mapping by another program.</exception>
    /// <exception cref="ObjectDisposedException">The mapping has been disposed.</exception>
    public void Move(long sourceOffset, long destinationOffset, long length, PmemCopyOptions flags = PmemCopyOptions.None)
    {
        CheckRange(sourceOffset, length);
        CheckWritableRange(destinationOffset, length);
        PersistOps.ValidateCopyOptions(flags, nameof(flags));
        OperationSlots slot = Enter();
        try
        {
            Counters.OnCopy(length, flags, Granularity);
            _ops.Copy(_base + destinationOffset, _base + sourceOffset, (nuint)length, flags);
        }
        finally
        {
            slot.Exit();
        }
    }

    /// <summary>Sets <paramref name="length"/> bytes to <paramref name="value"/> and makes them durable as <paramref name="flags"/> say (PMDK's pmem2 memset).</summary>
    /// <param name="offset">The first byte, from the start of the mapping.</param>
    /// <param name="length">The number of bytes.</param>
    /// <param name="value">The byte to store.</param>
    /// <param name="flags">No drain, no flush, non-temporal or temporal stores; undefined bits are refused.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie within the mapping.</exception>
    /// <exception cref="InvalidOperationException">The mapping is read-only.</exception>
    /// <exception cref="PmemException">The kernel refused to write the pages back (msync), or the file was truncated under the mapping by another program.</exception>
    /// <exception cref="ObjectDisposedException">The mapping has been disposed.</exception>
    public void Fill(long offset, long length, byte value, PmemCopyOptions flags = PmemCopyOptions.None)
    {
        CheckWritableRange(offset, length);
        PersistOps.ValidateCopyOptions(flags, nameof(flags));
        OperationSlots slot = Enter();
        try
        {
            Counters.OnCopy(length, flags, Granularity);
            _ops.Fill(_base + offset, value, (nuint)length, flags);
        }
        finally
        {
            slot.Exit();
        }
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
    /// <exception cref="PmemException">The kernel refused to write the page back (msync), or the file was truncated under the mapping.</exception>
    /// <exception cref="ObjectDisposedException">The mapping has been disposed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Publish(long offset, ulong value)
    {
        CheckWritableRef<ulong>(offset);
        OperationSlots slot = Enter();
        try
        {
            Volatile.Write(ref *(ulong*)(_base + offset), value);
            Counters.OnPersist(sizeof(ulong));
            _ops.Persist(_base + offset, sizeof(ulong));
        }
        finally
        {
            slot.Exit();
        }
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

    /// <summary>
    /// Unmaps the region, after every operation in progress on other threads has returned.
    /// Idempotent and thread-safe; every span, ref and pointer from it becomes invalid, and the
    /// address range stays reserved without access for a while so that a stale one faults.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        Volatile.Write(ref _readLimit, 0);
        Volatile.Write(ref _writeLimit, 0);
        Volatile.Write(ref _readWords, 0);
        Volatile.Write(ref _writeWords, 0);
        Counters.OnUnmap(PageSize, Interlocked.Exchange(ref _length, 0));
        // Operations that entered before _disposed was set finish on the live mapping; those
        // after it see _disposed and throw.
        OperationSlots.WaitForOperations(_id);
        _ops.Release();
        _handle.Dispose();
        _listDescriptor?.DangerousRelease();
        _root.Dispose();
        Interlocked.Decrement(ref s_live);
    }

    // Enter and slot.Exit bracket every operation that touches the mapped memory (see OperationSlots):
    // an operation either completes before Dispose unmaps or sees _disposed and throws.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private OperationSlots Enter()
    {
        OperationSlots slot = OperationSlots.Enter(_id);
        if (Volatile.Read(ref _disposed) != 0)
        {
            EnterDisposed(slot);
        }
        return slot;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void EnterDisposed(OperationSlots slot)
    {
        slot.Exit();
        ThrowHelper.ThrowObjectDisposed(nameof(DaxMapping));
    }

    // Bounds, use after dispose and read-only in one check against a limit of length + 1 (0 refuses
    // everything, the empty range included): offset and count are not negative (a constant count
    // folds away), and their sum (which cannot wrap as an unsigned number) stays below the limit.
    // Writers check against _writeLimit, 0 for a read-only mapping. writable is always a constant,
    // so the JIT keeps one field load.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CheckRange(long offset, long length, bool writable = false)
    {
        // The field is read first: that load is also the null check (a check after the sign
        // test would be an extra load in every iteration of a caller's loop).
        // The failure is a `throw` here, of an exception made out of line, not a call to a method
        // that throws: the JIT then knows the path never comes back and keeps nothing of the
        // caller's loop on its frame for a return from it (with the call, a 64 B ReadSafe loop
        // spilled its offset, length and destination on every iteration: 0.3-0.6 ns at 64 B under
        // load, bench/README.md, "Poison-safe read").
        long limit = writable ? _writeLimit : _readLimit;
        if (offset < 0 || length < 0 || (ulong)(offset + length) >= (ulong)limit)
        {
            throw BadRange(offset, length, writable);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CheckWritableRange(long offset, long length) => CheckRange(offset, length, writable: true);

    // As CheckRange for a T at offset, aligned to NaturalAlignment<T>().
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CheckRef<T>(long offset, bool writable = false) where T : unmanaged
    {
        if (sizeof(T) == sizeof(long))
        {
            // Rotating the offset right by 3 moves a misalignment into the top bits and turns a
            // negative offset into one of at least 2^60: either way at least the word count of any
            // mapping. So one unsigned compare checks sign, alignment, bounds and dispose.
            if (System.Numerics.BitOperations.RotateRight((ulong)offset, 3) >= (ulong)(writable ? _writeWords : _readWords))
            {
                throw BadRef<T>(offset, writable);
            }
            return;
        }
        long limit = writable ? _writeLimit : _readLimit;
        if (sizeof(T) is sizeof(int) or sizeof(short))
        {
            // The same in units of sizeof(T): (length + 1) >> k is length / sizeof(T) (the length
            // is a multiple of the page size), and 0 stays 0.
            int k = System.Numerics.BitOperations.TrailingZeroCount(sizeof(T));
            if (System.Numerics.BitOperations.RotateRight((ulong)offset, k) >= (ulong)(limit >> k))
            {
                throw BadRef<T>(offset, writable);
            }
            return;
        }
        // Any other size: the sign and alignment in one test of a constant mask, then the bounds.
        if ((offset & (long.MinValue | (long)(NaturalAlignment<T>() - 1))) != 0 || (ulong)offset + (ulong)sizeof(T) >= (ulong)limit)
        {
            throw BadRef<T>(offset, writable);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CheckWritableRef<T>(long offset) where T : unmanaged => CheckRef<T>(offset, writable: true);

    // The largest power of two dividing sizeof(T), capped at 8 (the x86-64 atomicity unit); a JIT-time constant.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int NaturalAlignment<T>() where T : unmanaged
        => Math.Min(8, 1 << System.Numerics.BitOperations.TrailingZeroCount(sizeof(T)));

    // A ref check failed: disposed, out of range, misaligned or (for a writer) read-only, in that
    // order. Returned, not thrown: the caller's `throw` tells the JIT the path never comes back, so it
    // keeps nothing of the caller's loop on its frame for a return (see CheckRange). Out of
    // line, so that the type-name lookup is not inlined into every caller's loop.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private Exception BadRef<T>(long offset, bool writable) where T : unmanaged
    {
        if (IsDisposed)
        {
            return new ObjectDisposedException(nameof(DaxMapping));
        }
        long limit = Volatile.Read(ref _length);
        if ((ulong)offset > (ulong)limit || (ulong)sizeof(T) > (ulong)(limit - offset))
        {
            return ThrowHelper.OutOfRange(offset, sizeof(T), limit);
        }
        if ((offset & (NaturalAlignment<T>() - 1)) != 0)
        {
            return ThrowHelper.MisalignedRef(offset, NaturalAlignment<T>(), typeof(T).Name);
        }
        Debug.Assert(writable && _readOnly, "an aligned ref inside a live mapping fails only a write to a read-only one");
        return ThrowHelper.ReadOnly();
    }

    private void ThrowIfDisposed()
    {
        if (IsDisposed)
        {
            ThrowHelper.ThrowObjectDisposed(nameof(DaxMapping));
        }
    }

    // A range check failed: the mapping is disposed, or the range lies outside it, or (for a
    // writer) the mapping is read-only, in that order. Returned for the caller to throw, as BadRef.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private Exception BadRange(long offset, long length, bool writable)
    {
        if (IsDisposed)
        {
            return new ObjectDisposedException(nameof(DaxMapping));
        }
        long limit = Volatile.Read(ref _length);
        if ((ulong)offset > (ulong)limit || (ulong)length > (ulong)(limit - offset))
        {
            return ThrowHelper.OutOfRange(offset, length, limit);
        }
        Debug.Assert(writable && _readOnly, "a range inside a live mapping fails only a write to a read-only one");
        return ThrowHelper.ReadOnly();
    }
}
