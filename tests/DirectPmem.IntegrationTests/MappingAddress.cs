using DirectPmem.Mapping;

namespace DirectPmem.IntegrationTests;

/// <summary>The address of a mapping for alignment and /proc checks (DaxMapping exposes it only as DangerousGetPointer).</summary>
internal static unsafe class MappingAddress
{
    internal static nint AddressOf(this DaxMapping mapping) => (nint)mapping.DangerousGetPointer();
}
