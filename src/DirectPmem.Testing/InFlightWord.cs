using System.Globalization;

namespace DirectPmem.Testing;

/// <summary>
/// An aligned 8-byte word whose durable value is uncertain at a crash: the media holds
/// <see cref="Old"/>, a flush not yet drained may carry <see cref="Flushed"/>, and the volatile
/// view holds <see cref="Current"/> (which the cache could evict to the media at any time).
/// </summary>
/// <param name="Offset">The word's offset in the device, a multiple of 8.</param>
/// <param name="Old">The value on the media.</param>
/// <param name="Flushed">The value a pending (flushed, not drained) write-back carries, or <see langword="null"/> if the line was not flushed since the last drain.</param>
/// <param name="Current">The value in the volatile view.</param>
public readonly record struct InFlightWord(long Offset, ulong Old, ulong? Flushed, ulong Current)
{
    /// <summary>Whether the word's line was flushed since the last drain.</summary>
    public bool WasFlushed => Flushed.HasValue;

    /// <summary>Whether reaching <see cref="Current"/> needs an eviction (the current value was not flushed).</summary>
    public bool CurrentNeedsEviction => Current != Old && (!Flushed.HasValue || Flushed.Value != Current);

    /// <summary>The distinct values the word may hold after a crash, old first.</summary>
    /// <param name="includeEviction">Whether values only an eviction of a dirty line could deliver count.</param>
    /// <param name="destination">Receives up to 3 values.</param>
    /// <returns>The number written.</returns>
    internal int GetCandidates(bool includeEviction, Span<ulong> destination)
    {
        int count = 0;
        destination[count++] = Old;
        if (Flushed is ulong flushed && flushed != Old)
        {
            destination[count++] = flushed;
        }
        if (includeEviction && CurrentNeedsEviction)
        {
            destination[count++] = Current;
        }
        return count;
    }

    /// <inheritdoc/>
    public override string ToString() => Flushed is ulong f
        ? string.Create(CultureInfo.InvariantCulture, $"word 0x{Offset:x}: media 0x{Old:x16}, flushed 0x{f:x16}, volatile 0x{Current:x16}")
        : string.Create(CultureInfo.InvariantCulture, $"word 0x{Offset:x}: media 0x{Old:x16}, volatile 0x{Current:x16} (not flushed)");
}
