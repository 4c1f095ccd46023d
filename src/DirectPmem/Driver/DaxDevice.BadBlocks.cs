using System.Globalization;
using DirectPmem.Geometry;
using DirectPmem.Interop;
using DirectPmem.Mapping;

namespace DirectPmem.Driver;

public sealed partial class DaxDevice
{
    /// <summary>
    /// The device's known bad ranges, in device offsets: the NVDIMM region's <c>badblocks</c>
    /// (sectors from the region's <c>resource</c>) translated through the device's physical ranges
    /// (<c>mappingN</c>, or <c>resource</c> and <c>size</c> for a single-range device). Region bad
    /// blocks outside the device (another namespace, the info block before the data) are not the
    /// device's. An emulated device reports its file's ranges. Read fresh from sysfs at every call.
    /// </summary>
    /// <returns>
    /// The ranges and how complete they are: <see cref="BadRangeCoverage.NoBadBlockList"/> for a
    /// device without an NVDIMM region (soft-reserved or CXL memory) or emulated on memory;
    /// <see cref="BadRangeCoverage.Unknown"/> when the list or the device's physical placement
    /// cannot be read (<c>resource</c> and <c>mappingN</c> are root-only) or breaks the format.
    /// </returns>
    /// <exception cref="ObjectDisposedException">The device is emulated and has been disposed.</exception>
    public BadRangeReport GetBadRanges()
    {
        if (_file is not null)
        {
            return _source.BadRanges();
        }
        if (Region is not DaxRegion region)
        {
            return BadRangeReport.None($"{Name} is not on an NVDIMM region (soft-reserved or CXL memory): sysfs lists no bad blocks for it");
        }
        string path = Path.Join(region.SysfsPath, "badblocks");
        string? text = Sysfs.TryReadText(path);
        if (text is null)
        {
            return BadRangeReport.Unknown($"{path} cannot be read");
        }
        var bad = new List<PmemRange>();
        string? problem = BadBlockMath.TryParse(text, region.Size, bad);
        if (problem is not null)
        {
            return BadRangeReport.Unknown($"{path}: {problem}; the list is not trusted");
        }
        string listed = string.Create(CultureInfo.InvariantCulture, $"{region.Name}/badblocks: {bad.Count} range(s) in the region");
        if (bad.Count == 0)
        {
            return new BadRangeReport([], BadRangeCoverage.Complete, listed);
        }
        if (region.Resource is not ulong regionStart)
        {
            return BadRangeReport.Unknown($"{listed}, but {region.Name}/resource (root-only) cannot be read: they cannot be placed in {Name}");
        }
        List<PlacedRange> placed = PhysicalRanges();
        if (placed.Count == 0)
        {
            return BadRangeReport.Unknown($"{listed}, but {Name}'s physical ranges (mappingN, resource: root-only) cannot be read: they cannot be placed in it");
        }
        List<PmemRange> ranges = BadBlockMath.ToSourceOffsets(bad, regionStart, placed);
        string detail = string.Create(CultureInfo.InvariantCulture, $"{listed}, placed through {Name}'s {placed.Count} physical range(s)");
        return text.Length >= BadBlockMath.TruncationThreshold
            ? BadRangeReport.Unknown(detail + "; the kernel's list fills a page and may be cut short", ranges.AsReadOnly())
            : new BadRangeReport(ranges.AsReadOnly(), BadRangeCoverage.Complete, detail);
    }

    /// <summary>
    /// Clears the poison in <c>[offset, offset + length)</c> of an emulated device by clearing its
    /// file (see <see cref="PmemFile.ClearBadRange(long, long)"/>). A real device-DAX device has no
    /// clear path a program can reach: for it this always throws
    /// <see cref="BadBlocksNotClearableException"/>, naming what is bad and what the operator does.
    /// </summary>
    /// <param name="offset">The first byte, a device offset; a multiple of the system page size.</param>
    /// <param name="length">The number of bytes; a positive multiple of the page size within <see cref="Size"/>.</param>
    /// <returns>For an emulated device, which method cleared it.</returns>
    /// <exception cref="BadBlocksNotClearableException">The device is a real device-DAX device.</exception>
    /// <exception cref="ArgumentException">The offset or length is not page-aligned.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The range is empty or ends past <see cref="Size"/>.</exception>
    /// <exception cref="InvalidOperationException">The emulated device is read-only or on memory.</exception>
    /// <exception cref="PmemException">The clear failed.</exception>
    public PoisonClearResult ClearBadRange(long offset, long length)
    {
        RangeValidator.ValidateNonEmpty(offset, length);
        if (length > Size - offset)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, string.Create(CultureInfo.InvariantCulture,
                $"range [0x{offset:x}, +0x{length:x}) ends past the end of {Name} ({Size} bytes)."));
        }
        if (_file is not null)
        {
            return _file.ClearBadRange(offset, length);
        }
        BadRangeReport report = GetBadRanges();
        var requested = new PmemRange(offset, length);
        throw NotClearable(report.Ranges.Where(r => r.Overlaps(requested)).ToList(), report);
    }

    /// <summary>
    /// Clears every listed bad range of an emulated device (see <see cref="PmemFile.ClearBadRanges"/>);
    /// for a real device-DAX device with bad ranges, throws <see cref="BadBlocksNotClearableException"/>.
    /// </summary>
    /// <returns>One result per cleared page range; empty when nothing is listed.</returns>
    /// <exception cref="BadBlocksNotClearableException">A real device-DAX device lists bad ranges.</exception>
    /// <exception cref="InvalidOperationException">The list is unknown, or the emulated device is read-only or on memory.</exception>
    /// <exception cref="PmemException">A clear failed.</exception>
    public IReadOnlyList<PoisonClearResult> ClearBadRanges()
    {
        if (_file is not null)
        {
            return _file.ClearBadRanges();
        }
        BadRangeReport report = GetBadRanges();
        if (report.Ranges.Count == 0)
        {
            return report.Coverage == BadRangeCoverage.Unknown
                ? throw new InvalidOperationException($"the bad ranges of {Name} are not known ({report.Detail}); nothing was cleared.")
                : [];
        }
        throw NotClearable(report.Ranges, report);
    }

    /// <summary>The operator's steps for a device-DAX device with bad ranges (ndctl's documented workflow).</summary>
    internal string OperatorSteps()
    {
        string ns = Namespace() ?? "the namespace";
        string region = Region?.Name ?? "the region";
        return $"stop the programs using {DevicePath} and keep what can still be read; restore the lost bytes from a replica or backup; then either recreate the namespace " +
            $"(ndctl destroy-namespace {ns}, ndctl create-namespace -m devdax, restore the data: the writes clear the errors) or, when the data on {ns} does not matter, " +
            $"run 'ndctl clear-errors {ns}' (every error on the namespace is cleared, the cleared blocks hold platform-defined bytes) and rewrite the range; " +
            $"finally 'ndctl start-scrub' and 'ndctl wait-scrub' so that {region}/badblocks is current";
    }

    private BadBlocksNotClearableException NotClearable(IReadOnlyList<PmemRange> ranges, BadRangeReport report)
    {
        string what = ranges.Count == 0
            ? $"no listed bad range overlaps the request ({report})"
            : "bad: " + string.Join(", ", ranges.Select(r => string.Create(CultureInfo.InvariantCulture, $"device offsets {r}{Physical(r)}")));
        string steps = OperatorSteps();
        string message = $"{DevicePath} ({Name}): {what}. A program cannot clear poison on device-DAX: the kernel has no recovery write for a character device, " +
            $"and nothing was changed. The operator's steps: {steps}.";
        return new BadBlocksNotClearableException(message, DevicePath, ranges, steps);
    }

    // " (physical 0x..)" for a device offset range that lies in one physical range, else "".
    private string Physical(PmemRange range)
    {
        foreach (PlacedRange p in PhysicalRanges())
        {
            if (range.Offset >= p.SourceOffset && range.End <= p.SourceOffset + p.Length)
            {
                ulong start = p.Start + (ulong)(range.Offset - p.SourceOffset);
                return string.Create(CultureInfo.InvariantCulture, $" (physical 0x{start:x}-0x{start + (ulong)range.Length - 1:x})");
            }
        }
        return "";
    }

    private List<PlacedRange> PhysicalRanges()
    {
        if (Ranges.Count > 0)
        {
            return Ranges.Select(m => new PlacedRange(m.Start, m.Length, m.DeviceOffset)).ToList();
        }
        return Resource is ulong start ? [new PlacedRange(start, Size, 0)] : [];
    }

    // The nd "dax" personality above the device holds the namespace's name (namespace0.0).
    private string? Namespace()
    {
        if (SysfsPath is null)
        {
            return null;
        }
        string? parent = Path.GetDirectoryName(SysfsReader.ResolvePath(SysfsPath));
        return parent is null ? null : Sysfs.TryReadText(Path.Join(parent, "namespace"));
    }
}
