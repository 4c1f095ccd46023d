using System.Buffers.Binary;
using System.Globalization;

namespace DirectPmem.Testing;

/// <summary>
/// What a power failure at one instant leaves: the media, and the words in flight (differing
/// between media, pending write-backs and the volatile view), each of which may survive as any of
/// its possible values, never torn within the word.
/// </summary>
public sealed class CrashState
{
    private readonly byte[] _media;
    private readonly InFlightWord[] _inFlight;

    internal CrashState(long drainNumber, bool beforeDrain, byte[] media, InFlightWord[] inFlight)
    {
        DrainNumber = drainNumber;
        IsBeforeDrain = beforeDrain;
        _media = media;
        _inFlight = inFlight;
    }

    /// <summary>The crash point: for a crash armed with <see cref="SimulatedDevice.CrashAtDrain"/>, the drain just before whose completion the state was captured; for <see cref="SimulatedDevice.Crash"/>, the number of drains completed.</summary>
    public long DrainNumber { get; }

    /// <summary>Whether the crash was captured as drain <see cref="DrainNumber"/> was issued (before it completed), rather than after <see cref="DrainNumber"/> drains had completed.</summary>
    public bool IsBeforeDrain { get; }

    /// <summary>Where the crash happened, in words: "before drain 3 completed" or "after 5 drains".</summary>
    public string Point => IsBeforeDrain
        ? string.Create(CultureInfo.InvariantCulture, $"before drain {DrainNumber} completed")
        : string.Create(CultureInfo.InvariantCulture, $"after {DrainNumber} drains");

    /// <summary>The media at the crash.</summary>
    public ReadOnlyMemory<byte> Media => _media;

    /// <summary>The device length.</summary>
    public int Length => _media.Length;

    /// <summary>The words in flight, by offset.</summary>
    public IReadOnlyList<InFlightWord> InFlight => _inFlight;

    /// <summary>
    /// The images a sweep checks at one crash point, the same for every sweep of this package:
    /// all of them when there are at most <paramref name="exhaustiveLimit"/>, otherwise nothing
    /// survived, the flushed words survived (when any were flushed), everything survived, and
    /// <paramref name="randomImages"/> seeded random ones.
    /// </summary>
    internal IEnumerable<(ImageStrategy Strategy, ulong Seed)> ImagesToCheck(long point, long exhaustiveLimit, int randomImages, ulong seed, bool includeEviction)
    {
        long count = CountImages(includeEviction);
        if (count <= exhaustiveLimit)
        {
            for (long i = 0; i < count; i++)
            {
                yield return (ImageStrategy.Exhaustive, (ulong)i);
            }
            yield break;
        }
        yield return (ImageStrategy.NothingSurvived, 0);
        if (InFlight.Any(w => w.WasFlushed))
        {
            yield return (ImageStrategy.FlushedSurvived, 0);
        }
        yield return (ImageStrategy.EverythingSurvived, 0);
        for (int i = 0; i < randomImages; i++)
        {
            yield return (ImageStrategy.Random, SplitMix64.Mix(seed, (ulong)point, (ulong)i));
        }
    }

    /// <summary>
    /// The number of distinct images (the product over words of their possible values), or
    /// <see cref="long.MaxValue"/> when it does not fit.
    /// </summary>
    /// <param name="includeEviction">Whether values only an eviction could deliver count.</param>
    public long CountImages(bool includeEviction = true)
    {
        Span<ulong> candidates = stackalloc ulong[3];
        long product = 1;
        foreach (InFlightWord word in _inFlight)
        {
            int n = word.GetCandidates(includeEviction, candidates);
            if (product > long.MaxValue / n)
            {
                return long.MaxValue;
            }
            product *= n;
        }
        return product;
    }

    /// <summary>Makes one image, reproducibly: the same strategy and seed give the same bytes.</summary>
    /// <param name="strategy">How words are chosen.</param>
    /// <param name="seed">For <see cref="ImageStrategy.Random"/>, the generator's seed; for <see cref="ImageStrategy.Exhaustive"/>, the combination's index (below <see cref="CountImages"/>); ignored otherwise.</param>
    /// <param name="includeEviction">Whether random and exhaustive images may contain unflushed new values (a cache can write back a dirty line at any time).</param>
    /// <returns>The image.</returns>
    /// <exception cref="ArgumentOutOfRangeException">An exhaustive index is not below the number of images.</exception>
    public CrashImage CreateImage(ImageStrategy strategy, ulong seed = 0, bool includeEviction = true)
    {
        byte[] bytes = new byte[_media.Length];
        ulong[] chosen = new ulong[_inFlight.Length];
        Compose(strategy, seed, includeEviction, bytes, chosen);
        return new CrashImage(this, strategy, seed, bytes, chosen);
    }

    /// <summary>Writes the image for (strategy, seed) into <paramref name="destination"/> and each in-flight word's value into <paramref name="chosen"/>.</summary>
    internal void Compose(ImageStrategy strategy, ulong seed, bool includeEviction, Span<byte> destination, Span<ulong> chosen)
    {
        _media.CopyTo(destination);
        Span<ulong> candidates = stackalloc ulong[3];
        var random = new SplitMix64(seed);
        ulong index = seed;
        if (strategy == ImageStrategy.Exhaustive)
        {
            long total = CountImages(includeEviction);
            if (seed >= (ulong)total)
            {
                throw new ArgumentOutOfRangeException(nameof(seed), seed,
                    string.Create(CultureInfo.InvariantCulture, $"The exhaustive index must be below the number of images, {total}."));
            }
        }
        for (int i = 0; i < _inFlight.Length; i++)
        {
            InFlightWord word = _inFlight[i];
            int n = word.GetCandidates(includeEviction, candidates);
            ulong value = strategy switch
            {
                ImageStrategy.NothingSurvived => word.Old,
                ImageStrategy.FlushedSurvived => word.Flushed ?? word.Old,
                ImageStrategy.EverythingSurvived => word.Current,
                ImageStrategy.Random => candidates[random.NextInt(n)],
                ImageStrategy.Exhaustive => candidates[(int)(index % (ulong)n)],
                _ => throw new ArgumentOutOfRangeException(nameof(strategy), strategy, "Unknown image strategy."),
            };
            if (strategy == ImageStrategy.Exhaustive)
            {
                index /= (ulong)n;
            }
            chosen[i] = value;
            BinaryPrimitives.WriteUInt64LittleEndian(destination.Slice(checked((int)word.Offset), SimulatedDevice.WordSize), value);
        }
    }

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"crash {Point}: {_inFlight.Length} words in flight, {CountImages()} possible images");
}
