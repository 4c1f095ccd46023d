using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace DirectPmem.Geometry;

/// <summary>Conversions and checks for <see cref="PageSize"/>.</summary>
public static class PageSizes
{
    /// <summary>The page sizes x86-64 supports, smallest first.</summary>
    public static ReadOnlySpan<PageSize> All => [PageSize.Pte, PageSize.Pmd, PageSize.Pud];

    /// <summary>The size in bytes.</summary>
    /// <param name="pageSize">A defined page size.</param>
    public static long ToBytes(this PageSize pageSize) => (long)pageSize;

    /// <summary>log2 of the size: 12, 21 or 30.</summary>
    /// <param name="pageSize">A defined page size.</param>
    public static int Shift(this PageSize pageSize) => System.Numerics.BitOperations.TrailingZeroCount((ulong)pageSize);

    /// <summary>Whether <paramref name="pageSize"/> is one of <see cref="PageSize.Pte"/>, <see cref="PageSize.Pmd"/>, <see cref="PageSize.Pud"/>.</summary>
    /// <param name="pageSize">The value to check.</param>
    public static bool IsDefined(PageSize pageSize) => pageSize is PageSize.Pte or PageSize.Pmd or PageSize.Pud;

    /// <summary>The page size of exactly <paramref name="bytes"/> bytes, if there is one.</summary>
    /// <param name="bytes">4096, 2097152 or 1073741824.</param>
    /// <param name="pageSize">The page size when the method returns <see langword="true"/>.</param>
    public static bool TryFromBytes(long bytes, out PageSize pageSize)
    {
        pageSize = (PageSize)bytes;
        return IsDefined(pageSize);
    }

    /// <summary>The page size of exactly <paramref name="bytes"/> bytes.</summary>
    /// <param name="bytes">4096, 2097152 or 1073741824.</param>
    /// <returns>The page size.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="bytes"/> is not a supported page size.</exception>
    public static PageSize FromBytes(long bytes) => FromBytes(bytes, nameof(bytes));

    /// <summary>As <see cref="FromBytes(long)"/>, naming <paramref name="paramName"/> in the error.</summary>
    internal static PageSize FromBytes(long bytes, string paramName)
    {
        if (!TryFromBytes(bytes, out PageSize pageSize))
        {
            ThrowNotAPageSize(bytes, paramName);
        }
        return pageSize;
    }

    /// <summary>Throws unless <paramref name="pageSize"/> is defined.</summary>
    /// <param name="pageSize">The value to check.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="pageSize"/> is not a supported page size.</exception>
    public static void Validate(PageSize pageSize) => Validate(pageSize, nameof(pageSize));

    /// <summary>As <see cref="Validate(PageSize)"/>, naming <paramref name="paramName"/> in the error.</summary>
    internal static void Validate(PageSize pageSize, string paramName)
    {
        if (!IsDefined(pageSize))
        {
            ThrowNotAPageSize((long)pageSize, paramName);
        }
    }

    /// <summary>A short human-readable form: <c>4 KiB</c>, <c>2 MiB</c>, <c>1 GiB</c>.</summary>
    /// <param name="pageSize">The page size.</param>
    public static string ToDisplayString(this PageSize pageSize) => pageSize switch
    {
        PageSize.Pte => "4 KiB",
        PageSize.Pmd => "2 MiB",
        PageSize.Pud => "1 GiB",
        _ => ((long)pageSize).ToString(CultureInfo.InvariantCulture) + " bytes (not a page size)",
    };

    [DoesNotReturn]
    private static void ThrowNotAPageSize(long bytes, string paramName)
        => throw new ArgumentOutOfRangeException(paramName, bytes,
            $"{bytes} bytes is not a page size; x86-64 supports 4096 (4 KiB), 2097152 (2 MiB) and 1073741824 (1 GiB).");
}
