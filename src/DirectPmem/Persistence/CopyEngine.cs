using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DirectPmem.Persistence;

/// <summary>
/// Copy, move and fill into persistent memory (PMDK's memmove_nodrain/memset_nodrain): temporal
/// stores plus a flush below the non-temporal threshold, non-temporal 64-byte line stores above it
/// (AVX-512, AVX2 or SSE2, chosen at startup) with the unaligned head and tail done temporally and
/// flushed. The final SFENCE is not the copy engine's: the persistence operations object issues it
/// unless <see cref="PmemCopyOptions.NoDrain"/>.
/// </summary>
/// <remarks>
/// An 8-byte-aligned destination with a length that is a multiple of 8 is only ever written with
/// stores of 8 bytes or more at 8-byte-aligned addresses (the power-fail atomicity unit): the byte
/// loops only run while the destination is unaligned or for a length that is not a multiple of 8.
/// </remarks>
internal static unsafe class CopyEngine
{
    private const int Line = 64;

    /// <summary>3 = AVX-512, 2 = AVX2, 1 = SSE2, 0 = no vectors (temporal only).</summary>
    internal static readonly int VectorLevel =
        CpuFeatures.Current.Avx512F ? 3 : CpuFeatures.Current.Avx2 ? 2 : Sse2.IsSupported ? 1 : 0;

    internal static readonly bool NoMovnt = PersistenceSettings.Current.NoMovnt || VectorLevel == 0;
    internal static readonly nuint MovntThreshold = (nuint)PersistenceSettings.Current.MovntThreshold;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool UseNonTemporal(nuint length, PmemCopyOptions flags)
    {
        if (NoMovnt || (flags & (PmemCopyOptions.Temporal | PmemCopyOptions.NoFlush)) != 0)
        {
            return false;
        }
        return (flags & PmemCopyOptions.NonTemporal) != 0 || length >= MovntThreshold;
    }

    /// <summary>Copies (with overlap in either direction) and flushes as <paramref name="flags"/> say, without the final drain (the operations object drains); <paramref name="flush"/> null means no flush is needed.</summary>
    internal static void MoveNoDrain(byte* destination, byte* source, nuint length, PmemCopyOptions flags,
        delegate* unmanaged[SuppressGCTransition]<byte*, nuint, void> flush)
    {
        if (length != 0)
        {
            // The destination starts inside the source: copy from the end so no source byte is overwritten before it is read.
            bool backward = (nuint)(destination - source) < length;
            if (UseNonTemporal(length, flags))
            {
                if (backward)
                {
                    NonTemporalBackward(destination, source, length, flush);
                }
                else
                {
                    NonTemporalForward(destination, source, length, flush);
                }
            }
            else
            {
                if (backward)
                {
                    TemporalBackward(destination, source, length);
                }
                else
                {
                    TemporalForward(destination, source, length);
                }
                if (flush != null && (flags & PmemCopyOptions.NoFlush) == 0)
                {
                    flush(destination, length);
                }
            }
        }
    }

    /// <summary>Fills and flushes as <paramref name="flags"/> say, without the final drain.</summary>
    internal static void FillNoDrain(byte* destination, byte value, nuint length, PmemCopyOptions flags,
        delegate* unmanaged[SuppressGCTransition]<byte*, nuint, void> flush)
    {
        if (length != 0)
        {
            if (UseNonTemporal(length, flags))
            {
                NonTemporalFill(destination, value, length, flush);
            }
            else
            {
                TemporalFill(destination, value, length);
                if (flush != null && (flags & PmemCopyOptions.NoFlush) == 0)
                {
                    flush(destination, length);
                }
            }
        }
    }

    // ---- temporal ----

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void TemporalForward(byte* d, byte* s, nuint n) => TemporalForward(d, ref *s, n);

    // The source is a reference, so that a span over managed memory is read without being pinned.
    internal static void TemporalForward(byte* d, ref byte s, nuint n)
    {
        while (n != 0 && ((nuint)d & 7) != 0)
        {
            *d++ = s;
            s = ref Unsafe.Add(ref s, 1);
            n--;
        }
        if (Vector256.IsHardwareAccelerated)
        {
            while (n >= 64)
            {
                // Load the whole chunk before storing: correct for an overlapping move with d < s.
                Vector256<byte> a = Vector256.LoadUnsafe(ref s);
                Vector256<byte> b = Vector256.LoadUnsafe(ref s, 32);
                a.Store(d);
                b.Store(d + 32);
                d += 64;
                s = ref Unsafe.Add(ref s, 64);
                n -= 64;
            }
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            while (n >= 32)
            {
                Vector128<byte> a = Vector128.LoadUnsafe(ref s);
                Vector128<byte> b = Vector128.LoadUnsafe(ref s, 16);
                a.Store(d);
                b.Store(d + 16);
                d += 32;
                s = ref Unsafe.Add(ref s, 32);
                n -= 32;
            }
        }
        while (n >= 8)
        {
            Unsafe.WriteUnaligned(d, Unsafe.ReadUnaligned<ulong>(ref s));
            d += 8;
            s = ref Unsafe.Add(ref s, 8);
            n -= 8;
        }
        while (n != 0)
        {
            *d++ = s;
            s = ref Unsafe.Add(ref s, 1);
            n--;
        }
    }

    internal static void TemporalBackward(byte* d, byte* s, nuint n)
    {
        d += n;
        s += n;
        while (n != 0 && ((nuint)d & 7) != 0)
        {
            *--d = *--s;
            n--;
        }
        if (Vector256.IsHardwareAccelerated)
        {
            while (n >= 64)
            {
                d -= 64;
                s -= 64;
                n -= 64;
                Vector256<byte> a = Vector256.Load(s);
                Vector256<byte> b = Vector256.Load(s + 32);
                b.Store(d + 32);
                a.Store(d);
            }
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            while (n >= 32)
            {
                d -= 32;
                s -= 32;
                n -= 32;
                Vector128<byte> a = Vector128.Load(s);
                Vector128<byte> b = Vector128.Load(s + 16);
                b.Store(d + 16);
                a.Store(d);
            }
        }
        while (n >= 8)
        {
            d -= 8;
            s -= 8;
            n -= 8;
            Unsafe.WriteUnaligned(d, Unsafe.ReadUnaligned<ulong>(s));
        }
        while (n != 0)
        {
            *--d = *--s;
            n--;
        }
    }

    internal static void TemporalFill(byte* d, byte value, nuint n)
    {
        while (n != 0 && ((nuint)d & 7) != 0)
        {
            *d++ = value;
            n--;
        }
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<byte> v = Vector256.Create(value);
            while (n >= 64)
            {
                v.Store(d);
                v.Store(d + 32);
                d += 64;
                n -= 64;
            }
        }
        ulong word = value * 0x0101010101010101UL;
        while (n >= 8)
        {
            Unsafe.WriteUnaligned(d, word);
            d += 8;
            n -= 8;
        }
        while (n != 0)
        {
            *d++ = value;
            n--;
        }
    }

    // ---- non-temporal ----

    private static void NonTemporalForward(byte* d, byte* s, nuint n, delegate* unmanaged[SuppressGCTransition]<byte*, nuint, void> flush)
    {
        nuint head = (Line - ((nuint)d & (Line - 1))) & (Line - 1);
        if (head != 0)
        {
            head = head < n ? head : n;
            TemporalForward(d, s, head);
            if (flush != null)
            {
                flush(d, head);
            }
            d += head;
            s += head;
            n -= head;
        }
        nuint body = n & ~(nuint)(Line - 1);
        if (body != 0)
        {
            StreamLinesForward(d, ref *s, body);
            d += body;
            s += body;
            n -= body;
        }
        if (n != 0)
        {
            TemporalForward(d, s, n);
            if (flush != null)
            {
                flush(d, n);
            }
        }
    }

    private static void NonTemporalBackward(byte* d, byte* s, nuint n, delegate* unmanaged[SuppressGCTransition]<byte*, nuint, void> flush)
    {
        nuint tail = (nuint)(d + n) & (Line - 1);
        if (tail != 0)
        {
            tail = tail < n ? tail : n;
            n -= tail;
            TemporalBackward(d + n, s + n, tail);
            if (flush != null)
            {
                flush(d + n, tail);
            }
        }
        nuint body = n & ~(nuint)(Line - 1);
        if (body != 0)
        {
            n -= body;
            StreamLinesBackward(d + n, s + n, body);
        }
        if (n != 0)
        {
            TemporalBackward(d, s, n);
            if (flush != null)
            {
                flush(d, n);
            }
        }
    }

    private static void NonTemporalFill(byte* d, byte value, nuint n, delegate* unmanaged[SuppressGCTransition]<byte*, nuint, void> flush)
    {
        nuint head = (Line - ((nuint)d & (Line - 1))) & (Line - 1);
        if (head != 0)
        {
            head = head < n ? head : n;
            TemporalFill(d, value, head);
            if (flush != null)
            {
                flush(d, head);
            }
            d += head;
            n -= head;
        }
        nuint body = n & ~(nuint)(Line - 1);
        if (body != 0)
        {
            StreamFill(d, value, body);
            d += body;
            n -= body;
        }
        if (n != 0)
        {
            TemporalFill(d, value, n);
            if (flush != null)
            {
                flush(d, n);
            }
        }
    }

    /// <summary>
    /// Whether a forward copy of <paramref name="length"/> bytes to <paramref name="destination"/>
    /// with <paramref name="flags"/> is whole lines of non-temporal stores and nothing else
    /// (<see cref="StreamLinesForward"/> alone, no head or tail to store temporally and flush):
    /// a 64-byte-aligned destination and length, at or above the threshold.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool IsWholeLineStream(byte* destination, nuint length, PmemCopyOptions flags)
        => (((nuint)destination | length) & (Line - 1)) == 0 && length != 0 && UseNonTemporal(length, flags);

    /// <summary>
    /// Whether a forward copy of <paramref name="length"/> bytes (not 0) with <paramref name="flags"/>
    /// is temporal stores followed, unless <see cref="PmemCopyOptions.NoFlush"/>, by one flush of
    /// the whole range (<see cref="TemporalForward(byte*, ref byte, nuint)"/> alone, as
    /// <see cref="MoveNoDrain"/> does it).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool IsTemporal(nuint length, PmemCopyOptions flags) => length != 0 && !UseNonTemporal(length, flags);

    // d is 64-byte aligned and n a multiple of 64. Every load of a block happens before its stores,
    // so an overlapping move with d < s is correct. The source is a reference, so that a span over
    // managed memory is read without being pinned; it calls nothing and cannot throw but for a fault
    // on the source.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void StreamLinesForward(byte* d, ref byte s, nuint n)
    {
        if (VectorLevel == 3)
        {
            while (n >= 4 * Line)
            {
                Vector512<byte> a = Vector512.LoadUnsafe(ref s);
                Vector512<byte> b = Vector512.LoadUnsafe(ref s, 64);
                Vector512<byte> c = Vector512.LoadUnsafe(ref s, 128);
                Vector512<byte> e = Vector512.LoadUnsafe(ref s, 192);
                Avx512F.StoreAlignedNonTemporal(d, a);
                Avx512F.StoreAlignedNonTemporal(d + 64, b);
                Avx512F.StoreAlignedNonTemporal(d + 128, c);
                Avx512F.StoreAlignedNonTemporal(d + 192, e);
                d += 4 * Line;
                s = ref Unsafe.Add(ref s, 4 * Line);
                n -= 4 * Line;
            }
            while (n != 0)
            {
                Avx512F.StoreAlignedNonTemporal(d, Vector512.LoadUnsafe(ref s));
                d += Line;
                s = ref Unsafe.Add(ref s, Line);
                n -= Line;
            }
        }
        else if (VectorLevel == 2)
        {
            while (n != 0)
            {
                Vector256<byte> a = Vector256.LoadUnsafe(ref s);
                Vector256<byte> b = Vector256.LoadUnsafe(ref s, 32);
                Avx.StoreAlignedNonTemporal(d, a);
                Avx.StoreAlignedNonTemporal(d + 32, b);
                d += Line;
                s = ref Unsafe.Add(ref s, Line);
                n -= Line;
            }
        }
        else
        {
            while (n != 0)
            {
                Vector128<byte> a = Vector128.LoadUnsafe(ref s);
                Vector128<byte> b = Vector128.LoadUnsafe(ref s, 16);
                Vector128<byte> c = Vector128.LoadUnsafe(ref s, 32);
                Vector128<byte> e = Vector128.LoadUnsafe(ref s, 48);
                Sse2.StoreAlignedNonTemporal(d, a);
                Sse2.StoreAlignedNonTemporal(d + 16, b);
                Sse2.StoreAlignedNonTemporal(d + 32, c);
                Sse2.StoreAlignedNonTemporal(d + 48, e);
                d += Line;
                s = ref Unsafe.Add(ref s, Line);
                n -= Line;
            }
        }
    }

    // d + n is 64-byte aligned and n a multiple of 64; copies from the last line down (overlap with d > s).
    private static void StreamLinesBackward(byte* d, byte* s, nuint n)
    {
        if (VectorLevel == 3)
        {
            while (n >= 4 * Line)
            {
                n -= 4 * Line;
                Vector512<byte> a = Vector512.Load(s + n);
                Vector512<byte> b = Vector512.Load(s + n + 64);
                Vector512<byte> c = Vector512.Load(s + n + 128);
                Vector512<byte> e = Vector512.Load(s + n + 192);
                Avx512F.StoreAlignedNonTemporal(d + n + 192, e);
                Avx512F.StoreAlignedNonTemporal(d + n + 128, c);
                Avx512F.StoreAlignedNonTemporal(d + n + 64, b);
                Avx512F.StoreAlignedNonTemporal(d + n, a);
            }
            while (n != 0)
            {
                n -= Line;
                Avx512F.StoreAlignedNonTemporal(d + n, Vector512.Load(s + n));
            }
        }
        else if (VectorLevel == 2)
        {
            while (n != 0)
            {
                n -= Line;
                Vector256<byte> a = Vector256.Load(s + n);
                Vector256<byte> b = Vector256.Load(s + n + 32);
                Avx.StoreAlignedNonTemporal(d + n + 32, b);
                Avx.StoreAlignedNonTemporal(d + n, a);
            }
        }
        else
        {
            while (n != 0)
            {
                n -= Line;
                Vector128<byte> a = Vector128.Load(s + n);
                Vector128<byte> b = Vector128.Load(s + n + 16);
                Vector128<byte> c = Vector128.Load(s + n + 32);
                Vector128<byte> e = Vector128.Load(s + n + 48);
                Sse2.StoreAlignedNonTemporal(d + n + 48, e);
                Sse2.StoreAlignedNonTemporal(d + n + 32, c);
                Sse2.StoreAlignedNonTemporal(d + n + 16, b);
                Sse2.StoreAlignedNonTemporal(d + n, a);
            }
        }
    }

    private static void StreamFill(byte* d, byte value, nuint n)
    {
        if (VectorLevel == 3)
        {
            Vector512<byte> v = Vector512.Create(value);
            for (; n != 0; n -= Line, d += Line)
            {
                Avx512F.StoreAlignedNonTemporal(d, v);
            }
        }
        else if (VectorLevel == 2)
        {
            Vector256<byte> v = Vector256.Create(value);
            for (; n != 0; n -= Line, d += Line)
            {
                Avx.StoreAlignedNonTemporal(d, v);
                Avx.StoreAlignedNonTemporal(d + 32, v);
            }
        }
        else
        {
            Vector128<byte> v = Vector128.Create(value);
            for (; n != 0; n -= Line, d += Line)
            {
                Sse2.StoreAlignedNonTemporal(d, v);
                Sse2.StoreAlignedNonTemporal(d + 16, v);
                Sse2.StoreAlignedNonTemporal(d + 32, v);
                Sse2.StoreAlignedNonTemporal(d + 48, v);
            }
        }
    }
}
