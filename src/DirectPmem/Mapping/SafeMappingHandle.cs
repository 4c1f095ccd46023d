using System.Runtime.InteropServices;
using DirectPmem.Interop;

namespace DirectPmem.Mapping;

/// <summary>
/// Owns one mmap'ed region. <see cref="ReservedLength"/> is what was reserved in the address
/// space and is unmapped, exactly, on release; what a <see cref="DaxMapping"/> exposes is kept
/// apart by the mapping.
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

    protected override bool ReleaseHandle() => Libc.MUnmap(handle, ReservedLength) == 0;
}
