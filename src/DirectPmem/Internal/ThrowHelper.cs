using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace DirectPmem.Internal;

/// <summary>Throw helpers kept out of line so that hot paths stay small (System.IO.Pipelines' pattern).</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    internal static void ThrowObjectDisposed(string typeName) => throw new ObjectDisposedException(typeName);

    /// <summary>A range outside the mapping, for the caller to throw (a <c>throw</c> in the caller tells the JIT the path never returns).</summary>
    internal static ArgumentOutOfRangeException OutOfRange(long offset, long length, long limit)
        => new(offset < 0 || offset > limit ? "offset" : "length",
            string.Create(CultureInfo.InvariantCulture,
                $"The range offset 0x{offset:x} length 0x{length:x} does not lie within the mapping of 0x{limit:x} bytes."));

    /// <summary>A write to a read-only mapping, for the caller to throw.</summary>
    internal static InvalidOperationException ReadOnly()
        => new("The mapping is read-only (PROT_READ): writing to it would kill the process. Use GetReadOnlySpan, or map with ReadOnly = false.");

    /// <summary>A ref at an offset misaligned for its type, for the caller to throw.</summary>
    internal static ArgumentException MisalignedRef(long offset, int alignment, string typeName)
        => new(string.Create(CultureInfo.InvariantCulture,
            $"offset 0x{offset:x} is not aligned to {alignment} bytes as {typeName} requires."), nameof(offset));

    [DoesNotReturn]
    internal static void ThrowLengthTooLarge(long length)
        => throw new ArgumentOutOfRangeException(nameof(length), length, "The length exceeds int.MaxValue, the largest Span or Memory.");
}
