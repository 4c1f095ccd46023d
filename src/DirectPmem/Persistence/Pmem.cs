using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace DirectPmem.Persistence;

/// <summary>
/// The platform's persistence primitives at pointer level, for code that manages persistent
/// memory itself (PMDK libpmem's <c>pmem_persist</c>, <c>pmem_memcpy</c> family), and what was
/// detected: flush instruction, eADR, vector width, non-temporal threshold.
/// </summary>
/// <remarks>
/// Prefer the methods of <c>DirectPmem.Mapping.DaxMapping</c>, which check ranges and use the
/// primitive the mapping's backing needs. The <c>Dangerous*</c> methods check nothing: the
/// caller guarantees that every byte of each range is mapped (writable, for the copies) for the
/// whole call, and that the memory is persistent memory with cache-line or byte granularity
/// (device-DAX, a DAX file mapped with MAP_SYNC). On page-cache memory they flush the CPU caches
/// but do not write the pages to the file (use msync, or <c>DaxMapping.Persist</c>).
/// A wrong pointer kills the process.
/// </remarks>
public static unsafe class Pmem
{
    private static readonly delegate* unmanaged[SuppressGCTransition]<byte*, nuint, void> s_flush =
        PersistencePlatform.FlushNeeded ? PersistencePlatform.FlushRoutine : null;

    private static readonly bool s_cannotFlush = PersistencePlatform.FlushNeeded && PersistencePlatform.FlushRoutine == null;

    /// <summary>The processor features detected with CPUID.</summary>
    public static CpuFeatures Features => CpuFeatures.Current;

    /// <summary>
    /// The instruction cache lines are flushed with (CLWB &gt; CLFLUSHOPT &gt; CLFLUSH, less what
    /// DIRECTPMEM_NO_CLWB / DIRECTPMEM_NO_CLFLUSHOPT disable); <see cref="FlushInstruction.None"/>
    /// when the system refused executable memory for the flush routines.
    /// </summary>
    public static FlushInstruction FlushInstruction => PersistencePlatform.Instruction;

    /// <summary>Why <see cref="FlushInstruction"/> was chosen, or why no instruction can be used.</summary>
    public static string FlushInstructionReason => PersistencePlatform.InstructionReason;

    /// <summary>Whether every NVDIMM region reports its persistence domain as <c>cpu_cache</c> (eADR).</summary>
    public static bool IsEadr => PersistencePlatform.Eadr.IsEadr;

    /// <summary>Whether persistent memory needs its cache lines flushed (false under eADR or DIRECTPMEM_NO_FLUSH=1).</summary>
    public static bool IsFlushNeeded => PersistencePlatform.FlushNeeded;

    /// <summary>The granularity device-DAX and DAX-file mappings get on this machine.</summary>
    public static PersistGranularity PersistentMemoryGranularity => PersistencePlatform.PmemGranularity;

    /// <summary>The widest vector used for non-temporal copies: 512, 256 or 128 bits (0: none).</summary>
    public static int VectorBits => CopyEngine.VectorLevel switch { 3 => 512, 2 => 256, 1 => 128, _ => 0 };

    /// <summary>Copies of at least this many bytes use non-temporal stores (DIRECTPMEM_MOVNT_THRESHOLD).</summary>
    public static int NonTemporalThreshold => (int)CopyEngine.MovntThreshold;

    /// <summary>Whether non-temporal stores are used at all (not when DIRECTPMEM_NO_MOVNT=1).</summary>
    public static bool UsesNonTemporalStores => !CopyEngine.NoMovnt;

    /// <summary>Waits until every flush and non-temporal store issued before it is complete (SFENCE).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Drain() => PersistOps.StoreFence();

    /// <summary>Flushes the cache lines covering <c>[address, address + length)</c>, without waiting for them (pair with <see cref="Drain"/>).</summary>
    /// <param name="address">The first byte.</param>
    /// <param name="length">The number of bytes; 0 flushes nothing.</param>
    /// <exception cref="PmemCapabilityException">Flushing is needed but no flush routine can run (the system refused executable memory).</exception>
    /// <remarks>See the class remarks for the contract: nothing is checked.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void DangerousFlush(void* address, nuint length)
    {
        var flush = s_flush;
        if (flush != null)
        {
            flush((byte*)address, length);
        }
        else if (s_cannotFlush)
        {
            ThrowCannotFlush();
        }
    }

    /// <summary>Flushes <c>[address, address + length)</c> and drains: the bytes are durable on return.</summary>
    /// <param name="address">The first byte.</param>
    /// <param name="length">The number of bytes.</param>
    /// <exception cref="PmemCapabilityException">Flushing is needed but no flush routine can run.</exception>
    /// <remarks>See the class remarks for the contract: nothing is checked.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void DangerousPersist(void* address, nuint length)
    {
        DangerousFlush(address, length);
        PersistOps.StoreFence();
    }

    /// <summary>Copies <paramref name="length"/> bytes (the ranges may overlap) and makes them durable as <paramref name="flags"/> say.</summary>
    /// <param name="destination">The first byte written, in persistent memory.</param>
    /// <param name="source">The first byte read.</param>
    /// <param name="length">The number of bytes.</param>
    /// <param name="flags">No drain, no flush, non-temporal or temporal, as PMDK's PMEM_F_MEM_* flags.</param>
    /// <exception cref="PmemCapabilityException">Flushing is needed but no flush routine can run.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="flags"/> has undefined bits.</exception>
    /// <remarks>See the class remarks for the contract: nothing is checked but the flags.</remarks>
    public static void DangerousCopy(void* destination, void* source, nuint length, PmemCopyOptions flags = PmemCopyOptions.None)
    {
        PersistOps.ValidateCopyOptions(flags, nameof(flags));
        if (s_cannotFlush)
        {
            ThrowCannotFlush();
        }
        CopyEngine.MoveNoDrain((byte*)destination, (byte*)source, length, flags, s_flush);
        if ((flags & PmemCopyOptions.NoDrain) == 0)
        {
            PersistOps.StoreFence();
        }
    }

    /// <summary>Fills <paramref name="length"/> bytes with <paramref name="value"/> and makes them durable as <paramref name="flags"/> say.</summary>
    /// <param name="destination">The first byte written, in persistent memory.</param>
    /// <param name="value">The byte to store.</param>
    /// <param name="length">The number of bytes.</param>
    /// <param name="flags">No drain, no flush, non-temporal or temporal, as PMDK's PMEM_F_MEM_* flags.</param>
    /// <exception cref="PmemCapabilityException">Flushing is needed but no flush routine can run.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="flags"/> has undefined bits.</exception>
    /// <remarks>See the class remarks for the contract: nothing is checked but the flags.</remarks>
    public static void DangerousFill(void* destination, byte value, nuint length, PmemCopyOptions flags = PmemCopyOptions.None)
    {
        PersistOps.ValidateCopyOptions(flags, nameof(flags));
        if (s_cannotFlush)
        {
            ThrowCannotFlush();
        }
        CopyEngine.FillNoDrain((byte*)destination, value, length, flags, s_flush);
        if ((flags & PmemCopyOptions.NoDrain) == 0)
        {
            PersistOps.StoreFence();
        }
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowCannotFlush()
        => throw new PmemCapabilityException(
            "Cache lines cannot be flushed: " + PersistencePlatform.InstructionReason + ". Map with DaxMapping, whose Persist falls back to msync.");
}
