using System.Globalization;
using System.Text;

namespace DirectPmem.Testing;

/// <summary>The kinds of misuse the simulator reports (the ones pmemcheck reports); warnings, never failures.</summary>
public enum SimulatorWarningKind
{
    /// <summary>A line holds stores that were never flushed when the device was checked or disposed.</summary>
    NeverFlushed,

    /// <summary>A line was flushed but no drain followed before the device was checked or disposed.</summary>
    FlushedNeverDrained,

    /// <summary>A flush of a line with nothing new to write back.</summary>
    RedundantFlush,

    /// <summary>A drain with no flush pending since the previous drain.</summary>
    EmptyDrain,

    /// <summary>The caller disposed the device's mapping, so the never-flushed check could not run.</summary>
    MappingDisposedByCaller,
}

/// <summary>One misuse warning.</summary>
/// <param name="Kind">What was seen.</param>
/// <param name="Offset">The line's offset, or -1 when the warning is not about one line.</param>
/// <param name="Message">A sentence naming the flush, drain or line.</param>
public sealed record SimulatorWarning(SimulatorWarningKind Kind, long Offset, string Message)
{
    /// <inheritdoc/>
    public override string ToString() => $"{Kind}: {Message}";
}

/// <summary>Counters and warnings of a simulated device.</summary>
/// <param name="NeverFlushedLines">Lines found holding stores never flushed (by <see cref="SimulatedDevice.CheckUnflushedStores"/> or dispose).</param>
/// <param name="FlushedNeverDrainedLines">Lines found flushed with no drain after.</param>
/// <param name="RedundantFlushes">Flushes of lines with nothing new to write back (each line counts once per flush).</param>
/// <param name="EmptyDrains">Drains with no flush pending.</param>
/// <param name="Drains">Drains issued.</param>
/// <param name="Flushes">Flush calls issued.</param>
/// <param name="Warnings">The warnings; each kind keeps only its first 16 examples.</param>
public sealed record SimulatorDiagnostics(long NeverFlushedLines, long FlushedNeverDrainedLines, long RedundantFlushes, long EmptyDrains,
    long Drains, long Flushes, IReadOnlyList<SimulatorWarning> Warnings)
{
    /// <summary>A summary for a test log: the counts, then every warning kept.</summary>
    public string Summary()
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture,
            $"{Flushes} flushes, {Drains} drains; warnings: {NeverFlushedLines} lines never flushed, {FlushedNeverDrainedLines} flushed but never drained, {RedundantFlushes} redundant flushes, {EmptyDrains} drains with nothing pending");
        foreach (SimulatorWarning warning in Warnings)
        {
            text.AppendLine().Append("  ").Append(warning);
        }
        return text.ToString();
    }
}
