using System.Globalization;

namespace DirectPmem.Geometry;

/// <summary>
/// A stretch of a source that sits at a known address: the bytes <c>[Start, Start + Length)</c> of
/// an address space (physical memory for a device-DAX range, block-device bytes for a file extent)
/// hold the source's bytes from <see cref="SourceOffset"/>.
/// </summary>
internal readonly record struct PlacedRange(ulong Start, long Length, long SourceOffset);

/// <summary>
/// The arithmetic of bad-block lists, pure and overflow-safe: parsing a sysfs <c>badblocks</c> file
/// (512-byte sectors, one <c>sector count</c> pair per line, as the kernel's <c>badblocks_show</c>
/// prints them) and translating its ranges into a source's own offsets through the places the
/// source's bytes live (PMDK's <c>badblocks_get</c>/<c>pmem2_badblock_next</c> do the same walk).
/// </summary>
internal static class BadBlockMath
{
    /// <summary>The unit of every <c>badblocks</c> file.</summary>
    internal const int SectorSize = 512;

    // badblocks_show fills at most one page and cuts the last line where the page ends: a text this
    // long may have lost entries, and its last line may be a cut one.
    internal const int TruncationThreshold = 4096 - 32;

    /// <summary>
    /// Parses <c>badblocks</c> text into byte ranges relative to what the file describes. Every
    /// number is checked: a line that is not two decimal numbers, an empty range, or a range that
    /// ends past <paramref name="limitBytes"/> is a problem, and then nothing of the text is trusted.
    /// </summary>
    /// <returns>null, or the problem (naming the line) when the text is not a valid list.</returns>
    internal static string? TryParse(string text, long limitBytes, List<PmemRange> into)
    {
        ulong limitSectors = (ulong)Math.Max(limitBytes, 0) / SectorSize;
        int lineNumber = 0;
        int start = into.Count;
        foreach (string rawLine in text.Split('\n'))
        {
            lineNumber++;
            string line = rawLine.Trim();
            if (line.Length == 0)
            {
                continue;
            }
            string[] parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 2
                || !ulong.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out ulong sector)
                || !ulong.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out ulong count))
            {
                into.RemoveRange(start, into.Count - start);
                return string.Create(CultureInfo.InvariantCulture, $"line {lineNumber} '{Shorten(line)}' is not 'sector count'");
            }
            if (count == 0 || sector >= limitSectors || count > limitSectors - sector)
            {
                into.RemoveRange(start, into.Count - start);
                return string.Create(CultureInfo.InvariantCulture,
                    $"line {lineNumber} '{line}' is empty or ends past the {limitBytes} bytes it describes");
            }
            into.Add(new PmemRange((long)(sector * SectorSize), (long)(count * SectorSize)));
        }
        return null;
    }

    /// <summary>
    /// Translates bad ranges given relative to <paramref name="relativeBase"/> (a region's physical
    /// start, or 0 for a disk's own bytes) into source offsets: each bad range is intersected with
    /// every placed range of the source, so one that straddles two placed ranges yields two pieces,
    /// and the parts that fall in no placed range (an info block, a gap between ranges, another
    /// namespace) are not the source's. The result is sorted and merged.
    /// </summary>
    internal static List<PmemRange> ToSourceOffsets(IReadOnlyList<PmemRange> bad, ulong relativeBase, IReadOnlyList<PlacedRange> placed)
    {
        var pieces = new List<PmemRange>();
        foreach (PmemRange b in bad)
        {
            if ((ulong)b.Offset > ulong.MaxValue - relativeBase)
            {
                continue;
            }
            ulong badStart = relativeBase + (ulong)b.Offset;
            ulong badEnd = (ulong)b.Length > ulong.MaxValue - badStart ? ulong.MaxValue : badStart + (ulong)b.Length;
            foreach (PlacedRange p in placed)
            {
                if (p.Length <= 0 || p.SourceOffset < 0 || p.Length > long.MaxValue - p.SourceOffset)
                {
                    continue;
                }
                ulong placedEnd = (ulong)p.Length > ulong.MaxValue - p.Start ? ulong.MaxValue : p.Start + (ulong)p.Length;
                ulong from = Math.Max(badStart, p.Start);
                ulong to = Math.Min(badEnd, placedEnd);
                if (from < to)
                {
                    pieces.Add(new PmemRange(p.SourceOffset + (long)(from - p.Start), (long)(to - from)));
                }
            }
        }
        return Merge(pieces);
    }

    /// <summary>The ranges cut to <c>[offset, offset + length)</c> and rebased to <paramref name="offset"/>, sorted and merged.</summary>
    internal static List<PmemRange> Window(IEnumerable<PmemRange> ranges, long offset, long length)
    {
        var pieces = new List<PmemRange>();
        long end = offset + length;
        foreach (PmemRange r in ranges)
        {
            long from = Math.Max(r.Offset, offset);
            long to = Math.Min(r.End, end);
            if (from < to)
            {
                pieces.Add(new PmemRange(from - offset, to - from));
            }
        }
        return Merge(pieces);
    }

    /// <summary>Sorts ranges and joins those that overlap or touch.</summary>
    internal static List<PmemRange> Merge(List<PmemRange> ranges)
    {
        ranges.Sort((a, b) => a.Offset.CompareTo(b.Offset));
        var merged = new List<PmemRange>(ranges.Count);
        foreach (PmemRange r in ranges)
        {
            if (merged.Count > 0 && r.Offset <= merged[^1].End)
            {
                PmemRange last = merged[^1];
                merged[^1] = new PmemRange(last.Offset, Math.Max(last.End, r.End) - last.Offset);
            }
            else
            {
                merged.Add(r);
            }
        }
        return merged;
    }

    private static string Shorten(string line) => line.Length <= 40 ? line : line[..40] + "...";
}
