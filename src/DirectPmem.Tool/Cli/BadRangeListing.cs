using System.Globalization;
using DirectPmem.Geometry;
using DirectPmem.Mapping;

namespace DirectPmem.Tool.Cli;

/// <summary>
/// A source's bad ranges as the tool prints them: <c>coverage</c> (<c>complete</c>,
/// <c>no_list</c>, <c>unknown</c>), <c>ranges</c> as <c>[offset, length]</c> pairs in the source's
/// bytes, and the <c>detail</c> the library gives (which lists were read, or why none could be).
/// </summary>
internal sealed record BadRangeListing(string Coverage, long[][] Ranges, string Detail)
{
    internal static BadRangeListing From(BadRangeReport report)
        => new(CoverageName(report.Coverage), report.Ranges.Select(r => new[] { r.Offset, r.Length }).ToArray(), report.Detail);

    internal static string CoverageName(BadRangeCoverage coverage) => coverage switch
    {
        BadRangeCoverage.Complete => "complete",
        BadRangeCoverage.NoBadBlockList => "no_list",
        _ => "unknown",
    };

    /// <summary>One cell: <c>0</c>, the count, <c>-</c> without a list, <c>?</c> (or <c>N+?</c>) when unknown.</summary>
    internal static string Cell(BadRangeReport report) => report.Coverage switch
    {
        BadRangeCoverage.NoBadBlockList => "-",
        BadRangeCoverage.Unknown => report.Ranges.Count == 0 ? "?" : report.Ranges.Count.ToString(CultureInfo.InvariantCulture) + "+?",
        _ => report.Ranges.Count.ToString(CultureInfo.InvariantCulture),
    };
}
