using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace DirectPmem.Internal;

/// <summary>Throw helpers kept out of line so that hot paths stay small (System.IO.Pipelines' pattern).</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    internal static void ThrowObjectDisposed(string typeName) => throw new ObjectDisposedException(typeName);

    [DoesNotReturn]
    internal static void ThrowOutOfRange(long offset, long length, long limit) => throw OutOfRange(offset, length, limit);

    /// <summary>What <see cref="ThrowOutOfRange"/> throws, for a caller that throws it itself (a <c>throw</c> in the caller tells the JIT the path never returns).</summary>
    internal static ArgumentOutOfRangeException OutOfRange(long offset, long length, long limit)
        => new(offset < 0 || offset > limit ? "offset" : "length",
            string.Create(CultureInfo.InvariantCulture,
                $"The range offset 0x{offset:x} length 0x{length:x} does not lie within the mapping of 0x{limit:x} bytes."));

    [DoesNotReturn]
    internal static void ThrowReadOnly() => throw ReadOnly();

    /// <summary>What <see cref="ThrowReadOnly"/> throws, for a caller that throws it itself.</summary>
    internal static InvalidOperationException ReadOnly()
        => new("The mapping is read-only (PROT_READ): writing to it would kill the process. Use GetReadOnlySpan, or map with ReadOnly = false.");

    [DoesNotReturn]
    internal static void ThrowMisalignedRef(long offset, int alignment, string typeName) => throw MisalignedRef(offset, alignment, typeName);

    /// <summary>What <see cref="ThrowMisalignedRef"/> throws, for a caller that throws it itself.</summary>
    internal static ArgumentException MisalignedRef(long offset, int alignment, string typeName)
        => new(string.Create(CultureInfo.InvariantCulture,
            $"offset 0x{offset:x} is not aligned to {alignment} bytes as {typeName} requires."), nameof(offset));

    [DoesNotReturn]
    internal static void ThrowLengthTooLarge(long length)
        => throw new ArgumentOutOfRangeException(nameof(length), length, "The length exceeds int.MaxValue, the largest Span or Memory.");
}
