namespace DirectPmem.Testing;

/// <summary>How a crash image chooses, for every word in flight, which value survived.</summary>
public enum ImageStrategy
{
    /// <summary>Nothing in flight survived: the image is the media.</summary>
    NothingSurvived,

    /// <summary>Every flushed-but-not-drained write-back survived; no dirty line was evicted.</summary>
    FlushedSurvived,

    /// <summary>Everything survived: the image is the volatile view.</summary>
    EverythingSurvived,

    /// <summary>Each word independently takes one of its possible values, from a seeded generator; the seed reproduces the image. Includes eviction of unflushed lines unless turned off.</summary>
    Random,

    /// <summary>One combination of an exhaustive enumeration of every word's possible values; the seed is the combination's index.</summary>
    Exhaustive,
}
