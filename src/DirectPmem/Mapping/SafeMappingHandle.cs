using System.Runtime.InteropServices;
using DirectPmem.Interop;

namespace DirectPmem.Mapping;

/// <summary>
/// Owns one mmap'ed region. <see cref="ReservedLength"/> is what was reserved in the address
/// space; what a <see cref="DaxMapping"/> exposes is kept apart by the mapping. On release the
/// region is not simply unmapped: it is replaced by an inaccessible reservation kept in
/// <see cref="AddressQuarantine"/>, so that a stale span faults instead of reaching memory that a
/// later mapping reuses.
/// </summary>
internal sealed class SafeMappingHandle : SafeHandle
{
    public SafeMappingHandle() : base(0, ownsHandle: true)
    {
    }

    internal SafeMappingHandle(nint address, nuint reservedLength) : base(0, ownsHandle: true)
    {
        ReservedLength = reservedLength;
        SetHandle(address);
    }

    /// <summary>The number of bytes reserved at <see cref="SafeHandle.DangerousGetHandle"/>.</summary>
    internal nuint ReservedLength { get; }

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle() => AddressQuarantine.Retire(handle, ReservedLength);
}

/// <summary>
/// Address ranges of disposed mappings, kept reserved PROT_NONE for a while so that a stale
/// span, ref or pointer faults (SIGSEGV) instead of silently reading or writing whatever mapping
/// the kernel would otherwise place at the same address. The pages and the file are released at
/// once (MAP_FIXED replaces the mapping atomically); only address space is held: at most
/// <see cref="MaxEntries"/> ranges and <see cref="MaxBytes"/> bytes, the oldest given back first.
/// </summary>
internal static class AddressQuarantine
{
    /// <summary>The most ranges kept (each is one VMA; vm.max_map_count is 65530 by default).</summary>
    internal const int MaxEntries = 1024;

    /// <summary>The most address space kept: 1 TiB of the 128 TiB a process has.</summary>
    internal const long MaxBytes = 1L << 40;

    private static readonly Lock s_gate = new();
    private static readonly Queue<(nint Address, nuint Length)> s_ranges = new();
    private static long s_bytes;

    /// <summary>The number of ranges held now.</summary>
    internal static int Count
    {
        get
        {
            lock (s_gate)
            {
                return s_ranges.Count;
            }
        }
    }

    /// <summary>Replaces the mapping with a PROT_NONE reservation and quarantines it; unmaps outright if that fails.</summary>
    internal static bool Retire(nint address, nuint length)
    {
        nint replaced = Libc.MMap(address, length, Libc.PROT_NONE,
            Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE | Libc.MAP_FIXED, -1, 0);
        if (replaced != address)
        {
            // Out of VMAs or memory for the page tables: give the range back instead.
            return Libc.MUnmap(address, length) == 0;
        }
        lock (s_gate)
        {
            s_ranges.Enqueue((address, length));
            s_bytes += (long)length;
            while (s_ranges.Count > MaxEntries || s_bytes > MaxBytes)
            {
                (nint oldest, nuint oldestLength) = s_ranges.Dequeue();
                s_bytes -= (long)oldestLength;
                _ = Libc.MUnmap(oldest, oldestLength);
            }
        }
        return true;
    }
}
