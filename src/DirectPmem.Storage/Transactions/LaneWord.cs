namespace DirectPmem.Storage.Transactions;

/// <summary>
/// A lane's generation word: the number of the last finished transaction (48 bits) with an 8-bit
/// XOR and an 8-bit sum of its six bytes above it. The word is written with one failure-atomic
/// 8-byte publish, and any single damaged byte of it fails <see cref="TryDecode"/> (a changed
/// generation byte changes the XOR; a changed check byte no longer matches), so a damaged word is
/// reported instead of rolling back, or keeping, the wrong transaction. All-zero never decodes.
/// </summary>
internal static class LaneWord
{
    public const ulong MaxGeneration = (1UL << 48) - 1;

    public static ulong Encode(ulong generation)
    {
        ulong xor = 0xA5, sum = 0x5A;
        for (int i = 0; i < 6; i++)
        {
            ulong b = (generation >> (8 * i)) & 0xFF;
            xor ^= b;
            sum += b;
        }
        return (generation & MaxGeneration) | ((xor & 0xFF) << 48) | ((sum & 0xFF) << 56);
    }

    public static bool TryDecode(ulong word, out ulong generation)
    {
        generation = word & MaxGeneration;
        return Encode(generation) == word;
    }
}
