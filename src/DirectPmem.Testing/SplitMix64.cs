namespace DirectPmem.Testing;

/// <summary>SplitMix64 (Steele, Lea, Flood 2014): a tiny generator whose output depends only on its seed, on every runtime.</summary>
internal struct SplitMix64(ulong seed)
{
    private ulong _state = seed;

    internal ulong Next()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>A value in <c>[0, bound)</c>; bound is tiny here (at most 3), so the modulo bias is negligible.</summary>
    internal int NextInt(int bound) => (int)(Next() % (ulong)bound);

    /// <summary>Mixes values into one well-spread seed.</summary>
    internal static ulong Mix(ulong a, ulong b, ulong c)
    {
        var g = new SplitMix64(a ^ (b * 0xD6E8FEB86659FD93UL) ^ (c * 0xA0761D6478BD642FUL));
        g.Next();
        return g.Next();
    }
}
