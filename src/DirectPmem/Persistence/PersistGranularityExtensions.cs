namespace DirectPmem.Persistence;

/// <summary>Comparisons of <see cref="PersistGranularity"/> values, which are not ordered by their numeric values.</summary>
public static class PersistGranularityExtensions
{
    /// <summary>
    /// Whether <paramref name="granularity"/> makes data durable at least as finely as
    /// <paramref name="required"/>: finest first, <see cref="PersistGranularity.Byte"/>,
    /// <see cref="PersistGranularity.CacheLine"/>, <see cref="PersistGranularity.Page"/>,
    /// <see cref="PersistGranularity.None"/> (volatile).
    /// </summary>
    /// <param name="granularity">The granularity a mapping has.</param>
    /// <param name="required">The granularity asked for.</param>
    /// <returns><see langword="true"/> when <paramref name="granularity"/> is <paramref name="required"/> or finer.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A value is not a defined granularity.</exception>
    public static bool IsAtLeastAsFineAs(this PersistGranularity granularity, PersistGranularity required)
        => Rank(granularity, nameof(granularity)) <= Rank(required, nameof(required));

    // 0 is the finest.
    private static int Rank(PersistGranularity granularity, string paramName) => granularity switch
    {
        PersistGranularity.Byte => 0,
        PersistGranularity.CacheLine => 1,
        PersistGranularity.Page => 2,
        PersistGranularity.None => 3,
        _ => throw new ArgumentOutOfRangeException(paramName, granularity, $"{(int)granularity} is not a PersistGranularity (None, Page, CacheLine or Byte)."),
    };
}
