using System.Globalization;

namespace DirectPmem.Persistence;

/// <summary>
/// The environment overrides of the persistence layer (PMDK's PMEM_* variables with a
/// <c>DIRECTPMEM_</c> prefix), read once per process.
/// </summary>
internal sealed record PersistenceSettings
{
    internal const string NoClwbVariable = "DIRECTPMEM_NO_CLWB";
    internal const string NoClflushOptVariable = "DIRECTPMEM_NO_CLFLUSHOPT";
    internal const string NoFlushVariable = "DIRECTPMEM_NO_FLUSH";
    internal const string ForceGranularityVariable = "DIRECTPMEM_FORCE_GRANULARITY";
    internal const string NoMovntVariable = "DIRECTPMEM_NO_MOVNT";
    internal const string MovntThresholdVariable = "DIRECTPMEM_MOVNT_THRESHOLD";
    internal const string NoGeneratedCodeVariable = "DIRECTPMEM_NO_GENERATED_CODE";

    /// <summary>
    /// Copies at least this long use non-temporal stores. PMDK uses 256; measured here
    /// (bench/README.md) 256 is also where non-temporal stores start to win over store + CLWB.
    /// </summary>
    internal const int DefaultMovntThreshold = 256;

    internal static PersistenceSettings Current { get; } = Read(Environment.GetEnvironmentVariable);

    /// <summary>Do not use CLWB.</summary>
    public bool NoClwb { get; init; }

    /// <summary>Do not use CLFLUSHOPT.</summary>
    public bool NoClflushOpt { get; init; }

    /// <summary><see langword="true"/>: never flush (as under eADR); <see langword="false"/>: flush even under eADR; <see langword="null"/>: decide from the platform.</summary>
    public bool? NoFlush { get; init; }

    /// <summary>Every mapping gets this granularity, except one whose source supplies its own operations (the crash simulator).</summary>
    public PersistGranularity? ForceGranularity { get; init; }

    /// <summary>Never use non-temporal stores.</summary>
    public bool NoMovnt { get; init; }

    /// <summary>The length from which copies use non-temporal stores.</summary>
    public int MovntThreshold { get; init; } = DefaultMovntThreshold;

    /// <summary>Do not generate flush code (behave as if the system refused executable memory).</summary>
    public bool NoGeneratedCode { get; init; }

    /// <summary>The problems found while reading the variables (an unparsable value is ignored and reported here).</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    internal static PersistenceSettings Read(Func<string, string?> getenv)
    {
        var warnings = new List<string>();
        bool Flag(string name)
        {
            string? value = getenv(name);
            return value is not null && value.Trim() == "1";
        }

        bool? noFlush = getenv(NoFlushVariable)?.Trim() switch
        {
            "1" => true,
            "0" => false,
            null or "" => null,
            string other => Warn<bool?>(warnings, NoFlushVariable, other, "0 or 1", null),
        };

        PersistGranularity? force = getenv(ForceGranularityVariable)?.Trim().ToLowerInvariant() switch
        {
            "cacheline" or "cache-line" or "cache_line" => PersistGranularity.CacheLine,
            "page" => PersistGranularity.Page,
            "byte" => PersistGranularity.Byte,
            null or "" => null,
            string other => Warn<PersistGranularity?>(warnings, ForceGranularityVariable, other, "cacheline, page or byte", null),
        };

        int threshold = DefaultMovntThreshold;
        string? thresholdText = getenv(MovntThresholdVariable);
        if (!string.IsNullOrWhiteSpace(thresholdText))
        {
            if (int.TryParse(thresholdText.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int parsed))
            {
                threshold = parsed;
            }
            else
            {
                Warn<int>(warnings, MovntThresholdVariable, thresholdText, "a non-negative decimal integer", 0);
            }
        }

        return new PersistenceSettings
        {
            NoClwb = Flag(NoClwbVariable),
            NoClflushOpt = Flag(NoClflushOptVariable),
            NoFlush = noFlush,
            ForceGranularity = force,
            NoMovnt = Flag(NoMovntVariable),
            MovntThreshold = threshold,
            NoGeneratedCode = Flag(NoGeneratedCodeVariable),
            Warnings = warnings,
        };
    }

    private static T Warn<T>(List<string> warnings, string name, string value, string expected, T fallback)
    {
        warnings.Add($"{name}='{value}' is ignored: expected {expected}.");
        return fallback;
    }
}
