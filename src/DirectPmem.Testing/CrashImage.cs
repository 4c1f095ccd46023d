using System.Globalization;
using System.Text;
using DirectPmem.Geometry;

namespace DirectPmem.Testing;

/// <summary>One possible content of the media after a crash, with the choice made for every word in flight.</summary>
public sealed class CrashImage
{
    private readonly byte[] _bytes;
    private readonly ulong[] _chosen;

    internal CrashImage(CrashState state, ImageStrategy strategy, ulong seed, byte[] bytes, ulong[] chosen)
    {
        State = state;
        Strategy = strategy;
        Seed = seed;
        _bytes = bytes;
        _chosen = chosen;
    }

    /// <summary>The crash the image comes from.</summary>
    public CrashState State { get; }

    /// <summary>How the words were chosen.</summary>
    public ImageStrategy Strategy { get; }

    /// <summary>The seed (random) or combination index (exhaustive) that reproduces the image with <see cref="CrashState.CreateImage"/>.</summary>
    public ulong Seed { get; }

    /// <summary>The image's bytes.</summary>
    public ReadOnlyMemory<byte> Data => _bytes;

    /// <summary>The value the image holds for <see cref="CrashState.InFlight"/>[<paramref name="index"/>].</summary>
    /// <param name="index">An index into the crash's in-flight words.</param>
    public ulong ChosenValue(int index) => _chosen[index];

    /// <summary>Opens the image as a new simulated device (media and volatile view both hold it), for recovery.</summary>
    /// <param name="pageSize">The device's page size.</param>
    /// <returns>The device; dispose it when done.</returns>
    public SimulatedDevice Open(PageSize pageSize = PageSize.Pte) => SimulatedDevice.FromImage(_bytes, pageSize);

    /// <summary>Writes the image to a new file (mode 0600), e.g. to open it with <see cref="Mapping.PmemFile.Open"/> or keep it for a bug report.</summary>
    /// <param name="path">The file; it must not exist.</param>
    /// <exception cref="IOException">The file exists or cannot be written.</exception>
    public void WriteToFile(string path)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        using var stream = new FileStream(path, options);
        stream.Write(_bytes);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>
    /// A report: the crash point, strategy and seed, then every word in flight with its media,
    /// flushed and volatile values and the value this image holds (at most <paramref name="maxWords"/>).
    /// </summary>
    /// <param name="maxWords">How many words to list.</param>
    public string Describe(int maxWords = 64)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture,
            $"crash point: {State.Point}; image: {Strategy}, seed 0x{Seed:x}; {State.InFlight.Count} words in flight");
        for (int i = 0; i < State.InFlight.Count && i < maxWords; i++)
        {
            InFlightWord word = State.InFlight[i];
            string which = _chosen[i] == word.Current ? (word.CurrentNeedsEviction ? "new, evicted" : word.WasFlushed ? "new, flushed" : "new")
                : _chosen[i] == word.Old ? "old" : "flushed";
            text.AppendLine().Append(CultureInfo.InvariantCulture, $"  {word} -> image 0x{_chosen[i]:x16} ({which})");
        }
        if (State.InFlight.Count > maxWords)
        {
            text.AppendLine().Append(CultureInfo.InvariantCulture, $"  ... {State.InFlight.Count - maxWords} more words");
        }
        return text.ToString();
    }

    /// <inheritdoc/>
    public override string ToString() => Describe(8);
}
