using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using DirectPmem.Diagnostics;
using DirectPmem.Internal;
using DirectPmem.Interop;

namespace DirectPmem.Persistence;

/// <summary>
/// How one mapping makes data durable, chosen once when the mapping is created (PMDK's
/// <c>pmem2_set_flush_fns</c> / <c>pmem2_set_mem_fns</c>): flush, drain, persist, copy and fill for
/// its <see cref="PersistGranularity"/>. The mapping checks a range and calls these; nothing here
/// branches on the backing per call. Every pointer given is inside the live mapping.
/// </summary>
/// <remarks>
/// This is also the seam of the crash-consistency simulator: DirectPmem.Testing supplies its own
/// subclass that records flushes and drains instead of executing them. The seam is internal on
/// purpose (see docs/architecture.md): DirectPmem.Testing is built and packed against this exact
/// DirectPmem version, so the seam can change without freezing it in the public API.
/// </remarks>
internal abstract unsafe class PersistOps
{
    /// <summary>The granularity these operations give.</summary>
    internal abstract PersistGranularity Granularity { get; }

    /// <summary>Starts writing <c>[address, address + length)</c> back; durable after <see cref="Drain"/>.</summary>
    internal abstract void Flush(byte* address, nuint length);

    /// <summary>Waits until every flush and non-temporal store issued before it is complete.</summary>
    internal abstract void Drain();

    /// <summary>Flush then drain.</summary>
    internal virtual void Persist(byte* address, nuint length)
    {
        Flush(address, length);
        Drain();
    }

    /// <summary>Copies (overlap either way) and makes durable as <paramref name="flags"/> say (pmem2 memmove).</summary>
    internal abstract void Copy(byte* destination, byte* source, nuint length, PmemCopyOptions flags);

    /// <summary>Fills and makes durable as <paramref name="flags"/> say (pmem2 memset).</summary>
    internal abstract void Fill(byte* destination, byte value, nuint length, PmemCopyOptions flags);

    /// <summary>
    /// Whether <see cref="Copy"/> is <see cref="CopyEngine.MoveNoDrain"/> followed by
    /// <see cref="StoreFence"/> unless <see cref="PmemCopyOptions.NoDrain"/>, and nothing else: then a
    /// caller may run the engine's whole-line stream itself (see <c>DaxMapping.Write</c>). False for
    /// page granularity and for the crash simulator, whose copies must go through <see cref="Copy"/>.
    /// </summary>
    internal virtual bool CopiesThroughEngine => false;

    /// <summary>With <see cref="CopiesThroughEngine"/>: the flush routine <see cref="Copy"/> gives the engine (null: no flush is needed).</summary>
    internal virtual delegate* unmanaged[SuppressGCTransition]<byte*, nuint, void> EngineFlush => null;

    /// <summary>Called once when the mapping is disposed, after the last operation has returned.</summary>
    internal virtual void Release()
    {
    }

    /// <summary>SFENCE: orders every earlier store, flush and non-temporal store before later stores.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void StoreFence()
    {
        if (Sse.IsSupported)
        {
            Sse.StoreFence();
        }
        else
        {
            Interlocked.MemoryBarrier();
        }
    }

    /// <summary>The mask of every defined <see cref="PmemCopyOptions"/> bit.</summary>
    internal const PmemCopyOptions DefinedCopyOptions =
        PmemCopyOptions.NoDrain | PmemCopyOptions.NonTemporal | PmemCopyOptions.Temporal | PmemCopyOptions.NoFlush;

    /// <summary>Refuses undefined bits, so that a flag from a newer version is never silently ignored.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ValidateCopyOptions(PmemCopyOptions flags, string paramName)
    {
        if ((flags & ~DefinedCopyOptions) != 0)
        {
            ThrowUndefinedCopyOptions(flags, paramName);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowUndefinedCopyOptions(PmemCopyOptions flags, string paramName)
        => throw new ArgumentOutOfRangeException(paramName, flags, string.Create(CultureInfo.InvariantCulture,
            $"PmemCopyOptions 0x{(int)flags:x} has undefined bits 0x{(int)(flags & ~DefinedCopyOptions):x}; the defined flags are NoDrain (1), NonTemporal (2), Temporal (4) and NoFlush (8)."));

    /// <summary>The shared operations of a granularity that needs no per-mapping state (Byte, CacheLine, None).</summary>
    internal static PersistOps Shared(PersistGranularity granularity) => granularity switch
    {
        PersistGranularity.CacheLine => CacheLineOps.Instance ?? throw new PmemCapabilityException(
            $"cache-line granularity needs a flush routine: {PersistencePlatform.InstructionReason}."),
        PersistGranularity.Byte => ByteOps.Instance,
        PersistGranularity.None => VolatileOps.Instance,
        _ => throw new ArgumentOutOfRangeException(nameof(granularity), granularity, "page granularity needs the mapping's address and file."),
    };
}

/// <summary>ADR persistent memory: CLWB/CLFLUSHOPT/CLFLUSH over the range, SFENCE to drain.</summary>
internal sealed unsafe class CacheLineOps : PersistOps
{
    /// <summary>Null when no flush routine can run on this machine.</summary>
    internal static readonly CacheLineOps? Instance = PersistencePlatform.FlushRoutine != null ? new CacheLineOps() : null;

    private readonly delegate* unmanaged[SuppressGCTransition]<byte*, nuint, void> _flush = PersistencePlatform.FlushRoutine;

    private CacheLineOps()
    {
    }

    internal override PersistGranularity Granularity => PersistGranularity.CacheLine;

    internal override bool CopiesThroughEngine => true;

    internal override delegate* unmanaged[SuppressGCTransition]<byte*, nuint, void> EngineFlush => _flush;

    internal override void Flush(byte* address, nuint length) => _flush(address, length);

    internal override void Drain() => StoreFence();

    internal override void Persist(byte* address, nuint length)
    {
        _flush(address, length);
        StoreFence();
    }

    internal override void Copy(byte* destination, byte* source, nuint length, PmemCopyOptions flags)
    {
        CopyEngine.MoveNoDrain(destination, source, length, flags, _flush);
        if ((flags & PmemCopyOptions.NoDrain) == 0)
        {
            StoreFence();
        }
    }

    internal override void Fill(byte* destination, byte value, nuint length, PmemCopyOptions flags)
    {
        CopyEngine.FillNoDrain(destination, value, length, flags, _flush);
        if ((flags & PmemCopyOptions.NoDrain) == 0)
        {
            StoreFence();
        }
    }
}

/// <summary>
/// Mappings whose stores need no write-back instruction: persist and drain are one store fence
/// (durability on eADR persistent memory, ordering only on volatile memory).
/// </summary>
internal abstract unsafe class FenceOnlyOps : PersistOps
{
    internal override bool CopiesThroughEngine => true;

    internal override void Flush(byte* address, nuint length)
    {
    }

    internal override void Drain() => StoreFence();

    internal override void Persist(byte* address, nuint length) => StoreFence();

    internal override void Copy(byte* destination, byte* source, nuint length, PmemCopyOptions flags)
    {
        CopyEngine.MoveNoDrain(destination, source, length, flags, null);
        if ((flags & PmemCopyOptions.NoDrain) == 0)
        {
            StoreFence();
        }
    }

    internal override void Fill(byte* destination, byte value, nuint length, PmemCopyOptions flags)
    {
        CopyEngine.FillNoDrain(destination, value, length, flags, null);
        if ((flags & PmemCopyOptions.NoDrain) == 0)
        {
            StoreFence();
        }
    }
}

/// <summary>eADR persistent memory: the caches are persistent, so a drain (SFENCE) is all a persist needs.</summary>
internal sealed class ByteOps : FenceOnlyOps
{
    internal static readonly ByteOps Instance = new();

    private ByteOps()
    {
    }

    internal override PersistGranularity Granularity => PersistGranularity.Byte;
}

/// <summary>Volatile memory: nothing to write back; persist and drain only order the stores (SFENCE).</summary>
internal sealed class VolatileOps : FenceOnlyOps
{
    internal static readonly VolatileOps Instance = new();

    private VolatileOps()
    {
    }

    internal override PersistGranularity Granularity => PersistGranularity.None;
}

/// <summary>
/// The page cache: msync(MS_SYNC) of the touched pages is both the flush and the wait, so
/// <see cref="Drain"/> does nothing (as the README's table says). Before every msync the file's
/// size is checked, so that a file truncated by another program under the mapping is reported
/// instead of a persist that claims success for bytes the file no longer has.
/// </summary>
internal sealed unsafe class PageOps : PersistOps
{
    private readonly byte* _base;
    private readonly long _sourceOffset;
    private readonly long _length;
    private readonly string? _path;
    private readonly SafeFileDescriptor? _fd;
    private bool _fdReferenced;

    /// <param name="mappingBase">The first byte of the mapping (page-aligned).</param>
    /// <param name="sourceOffset">The file offset of <paramref name="mappingBase"/>.</param>
    /// <param name="length">The mapped length.</param>
    /// <param name="path">The file, for messages.</param>
    /// <param name="fd">The file's descriptor, referenced until <see cref="Release"/>, for the truncation check; null for memory.</param>
    internal PageOps(byte* mappingBase, long sourceOffset, long length, string? path, SafeFileDescriptor? fd)
    {
        _base = mappingBase;
        _sourceOffset = sourceOffset;
        _length = length;
        _path = path;
        if (fd is not null)
        {
            fd.DangerousAddRef(ref _fdReferenced);
            _fd = fd;
        }
    }

    internal override PersistGranularity Granularity => PersistGranularity.Page;

    internal override void Flush(byte* address, nuint length) => MSync(address, length);

    // msync(MS_SYNC) has already waited: nothing is in flight.
    internal override void Drain()
    {
    }

    internal override void Persist(byte* address, nuint length) => MSync(address, length);

    internal override void Copy(byte* destination, byte* source, nuint length, PmemCopyOptions flags)
    {
        CopyEngine.MoveNoDrain(destination, source, length, PmemCopyOptions.Temporal | PmemCopyOptions.NoFlush, null);
        if ((flags & PmemCopyOptions.NoFlush) == 0)
        {
            MSync(destination, length);
        }
    }

    internal override void Fill(byte* destination, byte value, nuint length, PmemCopyOptions flags)
    {
        CopyEngine.FillNoDrain(destination, value, length, PmemCopyOptions.Temporal | PmemCopyOptions.NoFlush, null);
        if ((flags & PmemCopyOptions.NoFlush) == 0)
        {
            MSync(destination, length);
        }
    }

    internal override void Release()
    {
        if (_fdReferenced)
        {
            _fdReferenced = false;
            _fd!.DangerousRelease();
        }
    }

    private void MSync(byte* address, nuint length)
    {
        if (length == 0)
        {
            return;
        }
        long page = Environment.SystemPageSize;
        long offset = address - _base;
        long start = offset & ~(page - 1);
        long end = Math.Min((offset + (long)length + page - 1) & ~(page - 1), _length);
        if (_fd is not null)
        {
            CheckNotTruncated(_sourceOffset + end);
        }
        Counters.OnMSync(end - start);
        SyscallError.Check(Libc.MSync((nint)(_base + start), (nuint)(end - start), Libc.MS_SYNC),
            "msync(MS_SYNC)", _path, _sourceOffset + start, end - start);
    }

    private void CheckNotTruncated(long fileEnd)
    {
        Libc.Stat st;
        SyscallError.Check(Libc.FStat(_fd!.Fd, &st), "fstat", _path);
        if (st.st_size < fileEnd)
        {
            throw new PmemException(string.Create(CultureInfo.InvariantCulture,
                $"'{_path}' was truncated to {st.st_size} bytes under a live mapping that reaches file offset {fileEnd}: the bytes past the new end are lost and touching them raises SIGBUS. Another program changed the file's size; DirectPmem never does."),
                "fstat", 0, _path);
        }
    }
}
