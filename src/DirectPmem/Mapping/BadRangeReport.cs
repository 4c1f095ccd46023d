using System.Globalization;
using DirectPmem.Geometry;

namespace DirectPmem.Mapping;

/// <summary>How much a <see cref="BadRangeReport"/> can be trusted.</summary>
public enum BadRangeCoverage
{
    /// <summary>Every bad-block list that covers the source was read and translated: <see cref="BadRangeReport.Ranges"/> is what the kernel knows.</summary>
    Complete,

    /// <summary>
    /// No bad-block list exists for this source: it is not on an NVDIMM region (memory, tmpfs, a
    /// disk, soft-reserved or CXL memory without one). A media error can still happen and raises
    /// SIGBUS when met; nothing in sysfs lists it in advance.
    /// </summary>
    NoBadBlockList,

    /// <summary>
    /// The source is (or may be) on persistent memory, but its list could not be read or translated
    /// (a root-only <c>resource</c>, a file system without FIEMAP, a stacked block device, a list
    /// the kernel truncated or one that breaks the format); <see cref="BadRangeReport.Detail"/> says which.
    /// <see cref="BadRangeReport.Ranges"/> holds what could be established, never a guess.
    /// </summary>
    Unknown,
}

/// <summary>
/// The known bad ranges (media errors, "poison") of a device-DAX device, a file or a mapping, in
/// the source's own offsets: device offsets for a device, file offsets for a file, offsets from the
/// mapping's first byte for a mapping. Read fresh from sysfs each time it is asked for (the kernel
/// adds ranges when a scrub or a machine check finds them and drops them when they are cleared).
/// </summary>
/// <remarks>
/// The ranges come from the NVDIMM region's <c>badblocks</c> (device-DAX, translated through the
/// device's physical ranges) or the pmem block device's <c>badblocks</c> (files, translated through
/// the file's extents). They are in 512-byte sectors, the kernel's unit: a range is a multiple of
/// 512 bytes, and the poison itself is usually one 256-byte or 4 KiB line within it. A load from a
/// listed range raises SIGBUS (<c>BUS_MCEERR_AR</c>).
/// </remarks>
public sealed class BadRangeReport
{
    internal BadRangeReport(IReadOnlyList<PmemRange> ranges, BadRangeCoverage coverage, string detail)
    {
        Ranges = ranges;
        Coverage = coverage;
        Detail = detail;
    }

    /// <summary>The bad ranges, sorted by offset, none overlapping or touching another.</summary>
    public IReadOnlyList<PmemRange> Ranges { get; }

    /// <summary>Whether the list is complete, absent by nature, or unknown.</summary>
    public BadRangeCoverage Coverage { get; }

    /// <summary>Which sysfs lists were read (and translated how), or why none could be.</summary>
    public string Detail { get; }

    /// <summary>Whether the source is known to have no bad range: the list is complete and empty, or there is no list for it.</summary>
    public bool IsKnownClean => Coverage != BadRangeCoverage.Unknown && Ranges.Count == 0;

    /// <summary>The total number of bad bytes listed.</summary>
    public long TotalBytes => Ranges.Sum(r => r.Length);

    /// <summary>Whether a listed bad range shares a byte with <c>[offset, offset + length)</c>.</summary>
    /// <param name="offset">The first byte, in the report's offsets.</param>
    /// <param name="length">The number of bytes.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range is empty, negative or overflows.</exception>
    public bool Overlaps(long offset, long length)
    {
        var range = new PmemRange(offset, length);
        foreach (PmemRange r in Ranges)
        {
            if (r.Overlaps(range))
            {
                return true;
            }
        }
        return false;
    }

    /// <inheritdoc/>
    public override string ToString() => Coverage switch
    {
        BadRangeCoverage.NoBadBlockList => "no bad-block list (" + Detail + ")",
        BadRangeCoverage.Unknown when Ranges.Count == 0 => "unknown (" + Detail + ")",
        _ when Ranges.Count == 0 => "no bad ranges (" + Detail + ")",
        _ => string.Create(CultureInfo.InvariantCulture, $"{Ranges.Count} bad range(s){(Coverage == BadRangeCoverage.Unknown ? " at least" : "")}: {string.Join(", ", Ranges)} ({Detail})"),
    };

    /// <summary>A report of no list at all.</summary>
    internal static BadRangeReport None(string why) => new([], BadRangeCoverage.NoBadBlockList, why);

    /// <summary>A report that cannot be made.</summary>
    internal static BadRangeReport Unknown(string why, IReadOnlyList<PmemRange>? partial = null) => new(partial ?? [], BadRangeCoverage.Unknown, why);

    /// <summary>This report for the window <c>[offset, offset + length)</c>, in offsets from the window's start.</summary>
    internal BadRangeReport Window(long offset, long length, string? what = null)
        => new(BadBlockMath.Window(Ranges, offset, length).AsReadOnly(), Coverage,
            what is null ? Detail : Detail + "; " + what);
}
