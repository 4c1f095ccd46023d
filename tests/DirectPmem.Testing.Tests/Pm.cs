using System.Buffers.Binary;
using DirectPmem.Mapping;

namespace DirectPmem.Testing.Tests;

/// <summary>Small helpers for the protocols under test.</summary>
internal static class Pm
{
    internal static void Store(DaxMapping map, long offset, ulong value) => map.GetRef<ulong>(offset) = value;

    internal static ulong Load(DaxMapping map, long offset) => map.GetReadOnlyRef<ulong>(offset);

    internal static ulong WordOf(ReadOnlySpan<byte> image, long offset) => BinaryPrimitives.ReadUInt64LittleEndian(image.Slice((int)offset, 8));

    /// <summary>A mix of two words that a torn record fails to match (a stand-in for a real checksum).</summary>
    internal static ulong Checksum(ulong a, ulong b)
    {
        ulong x = (a * 0x9E3779B97F4A7C15UL) ^ (b + 0x632BE59BD9B4E019UL);
        x = (x ^ (x >> 29)) * 0xBF58476D1CE4E5B9UL;
        return x ^ (x >> 32) ^ 0xC0FFEE;
    }
}
