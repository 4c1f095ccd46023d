using DirectPmem.Mapping;

namespace DirectPmem.Storage;

/// <summary>
/// The storage layer's one way to copy bytes out of the media where they may be bad: through
/// <see cref="DaxMapping.ReadSafe"/> (a poisoned line or a truncated page is a
/// <see cref="PmemMediaErrorException"/>), or, in a process where the safe copy is unavailable
/// (<see cref="DaxMapping.IsReadSafeSupported"/>: not x86-64), a plain copy, as any span read is.
/// </summary>
internal static class MediaRead
{
    internal static void Copy(DaxMapping mapping, long offset, Span<byte> destination)
    {
        if (DaxMapping.IsReadSafeSupported)
        {
            mapping.ReadSafe(offset, destination);
        }
        else
        {
            mapping.GetReadOnlySpan(offset, destination.Length).CopyTo(destination);
        }
    }

    /// <summary>Copies out of the media poison-safe, as <see cref="Copy"/>; returns the media error instead of throwing it.</summary>
    internal static PmemMediaErrorException? TryCopy(DaxMapping mapping, long offset, Span<byte> destination)
    {
        try
        {
            Copy(mapping, offset, destination);
            return null;
        }
        catch (PmemMediaErrorException e)
        {
            return e;
        }
    }
}
