using System.Globalization;
using System.Text;

namespace DirectPmem.Testing;

/// <summary>The statistics of a crash sweep.</summary>
/// <param name="Drains">Drains the workload issues (each is a crash point, plus the end).</param>
/// <param name="CrashPoints">Crash points tried.</param>
/// <param name="ImagesTried">Images recovered and checked.</param>
/// <param name="InFlightWordsPerCrash">Words in flight at each crash point tried, in order.</param>
/// <param name="Failures">Images whose recovery or checks failed.</param>
public sealed record CrashStatistics(long Drains, int CrashPoints, long ImagesTried, IReadOnlyList<int> InFlightWordsPerCrash, int Failures)
{
    /// <summary>The most words in flight at one crash point.</summary>
    public int MaxInFlightWords => InFlightWordsPerCrash.Count == 0 ? 0 : InFlightWordsPerCrash.Max();

    /// <summary>The mean number of words in flight per crash point.</summary>
    public double MeanInFlightWords => InFlightWordsPerCrash.Count == 0 ? 0 : InFlightWordsPerCrash.Average();

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{CrashPoints} crash points ({Drains} drains + end), {ImagesTried} images, in-flight words per crash max {MaxInFlightWords} mean {MeanInFlightWords:0.0}, {Failures} failures");
}

/// <summary>One failing image: where the crash was, how to reproduce the image, and what recovery threw.</summary>
/// <param name="Image">The image (its crash state, strategy and seed).</param>
/// <param name="Error">What the recovery or the invariant checks threw.</param>
public sealed record CrashFailure(CrashImage Image, Exception Error)
{
    /// <summary>The crash point to replay with <see cref="CrashTest.OnlyCrashPoint"/>.</summary>
    public long CrashPoint => Image.State.IsBeforeDrain ? Image.State.DrainNumber : Image.State.DrainNumber + 1;

    /// <summary>The report: crash point, strategy, seed, the words that differed and the error.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Image.Describe()}{Environment.NewLine}replay: OnlyCrashPoint = {CrashPoint}, OnlyStrategy = ImageStrategy.{Image.Strategy}, OnlySeed = 0x{Image.Seed:x}{Environment.NewLine}error: {Error.GetType().Name}: {Error.Message}");
}

/// <summary>The result of <see cref="CrashTest.Run"/>.</summary>
/// <param name="Statistics">Crash points, images, words in flight, failures.</param>
/// <param name="Diagnostics">The misuse warnings of the first run, setup and workload (never failures); its counters are the workload's.</param>
/// <param name="Failures">The failing images, first first.</param>
public sealed record CrashTestResult(CrashStatistics Statistics, SimulatorDiagnostics Diagnostics, IReadOnlyList<CrashFailure> Failures)
{
    /// <summary>Whether every image recovered and passed the checks.</summary>
    public bool Passed => Failures.Count == 0;

    /// <summary>Statistics, warnings and the first failure's report.</summary>
    public string Summary()
    {
        var text = new StringBuilder();
        text.Append(Statistics).AppendLine().Append(Diagnostics.Summary());
        if (Failures.Count > 0)
        {
            text.AppendLine().Append("first failure: ").Append(Failures[0]);
        }
        return text.ToString();
    }

    /// <summary>Throws <see cref="CrashConsistencyException"/> with the first failure's report if any image failed.</summary>
    /// <exception cref="CrashConsistencyException">An image failed.</exception>
    public void ThrowIfFailed()
    {
        if (Failures.Count > 0)
        {
            throw new CrashConsistencyException(this);
        }
    }
}

/// <summary>A crash sweep found an image the code under test does not recover from.</summary>
public sealed class CrashConsistencyException : Exception
{
    /// <summary>Creates the exception for a failed sweep.</summary>
    /// <param name="result">The sweep's result, with at least one failure.</param>
    public CrashConsistencyException(CrashTestResult result)
        : base(Describe(result), result is { Failures.Count: > 0 } ? result.Failures[0].Error : null)
    {
        Result = result;
    }

    /// <summary>The sweep's result.</summary>
    public CrashTestResult? Result { get; }

    /// <summary>Creates the exception with a message.</summary>
    public CrashConsistencyException() { }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">The message.</param>
    public CrashConsistencyException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and a cause.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public CrashConsistencyException(string message, Exception innerException) : base(message, innerException) { }

    private static string Describe(CrashTestResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        return "Crash-consistency failure: " + result.Summary();
    }
}
