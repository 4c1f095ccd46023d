using System.Globalization;
using DirectPmem.Geometry;
using DirectPmem.Interop;

namespace DirectPmem.Mapping;

/// <summary>
/// Places the pmem block device's bad blocks in a file: the file system's block device
/// (<c>st_dev</c>) is found in sysfs, its disk's <c>badblocks</c> (sectors from the namespace's
/// data start) are read and validated, and the file's extents (FIEMAP, physical offsets on the
/// block device, plus a partition's start) turn them into file offsets. What PMDK's
/// <c>badblocks_get</c> does for fsdax, without libndctl.
/// </summary>
internal static class FileBadRanges
{
    internal static unsafe BadRangeReport Read(int fd, string path, MappingBacking backing, long size, string sysfsRoot)
    {
        if (backing is not (MappingBacking.PageCacheFile or MappingBacking.FsDaxFile))
        {
            return BadRangeReport.None($"'{path}' is {MapSources.Describe(backing)}, which has no bad-block list");
        }
        Libc.Stat st;
        SyscallError.Check(Libc.FStat(fd, &st), "fstat", path);
        uint major = Libc.Major(st.st_dev);
        uint minor = Libc.Minor(st.st_dev);
        string dev = string.Create(CultureInfo.InvariantCulture, $"{major}:{minor}");
        switch (NdBlockDevice.Find(sysfsRoot, major, minor, out NdBlockDevice? disk, out string node))
        {
            case NdBlockDevice.Lookup.NotABlockDevice:
                return BadRangeReport.None($"the file system of '{path}' is on device {dev}, which is not a block device in sysfs ({node}): not persistent memory");
            case NdBlockDevice.Lookup.NotOnNvdimm:
                return BadRangeReport.None($"the file system of '{path}' is on block device {dev}, which is not on an NVDIMM region");
            case NdBlockDevice.Lookup.SectorMode:
                return BadRangeReport.Unknown($"the file system of '{path}' is on block device {dev}, a sector-mode (BTT) namespace: the BTT remaps its sectors and lists no bad blocks, so the region's cannot be placed in the file");
            case NdBlockDevice.Lookup.Stacked:
                return BadRangeReport.Unknown($"the file system of '{path}' is on block device {dev}, a stacked device (device-mapper or md): its sectors are not translated to the bad blocks of the devices below it");
        }
        return Place(fd, path, size, disk!);
    }

    private static BadRangeReport Place(int fd, string path, long size, NdBlockDevice disk)
    {
        if (!TryParseSectors(disk.DiskSizeText, out ulong diskSectors) || diskSectors == 0 || diskSectors > (ulong)long.MaxValue / BadBlockMath.SectorSize)
        {
            return BadRangeReport.Unknown($"{disk.DiskSizePath} is '{disk.DiskSizeText ?? "(unreadable)"}', not a size in sectors: the bad blocks of {disk.DiskName} cannot be bounded");
        }
        long diskBytes = (long)diskSectors * BadBlockMath.SectorSize;
        long partitionStart = 0;
        if (disk.PartitionStartText is not null)
        {
            if (!TryParseSectors(disk.PartitionStartText, out ulong startSectors) || startSectors >= diskSectors)
            {
                return BadRangeReport.Unknown($"{disk.PartitionStartPath} is '{disk.PartitionStartText}', not a sector inside {disk.DiskName}: the partition cannot be placed on the disk");
            }
            partitionStart = (long)startSectors * BadBlockMath.SectorSize;
        }
        if (disk.BadBlocksText is null)
        {
            return BadRangeReport.Unknown($"{disk.BadBlocksPath} cannot be read");
        }
        var bad = new List<PmemRange>();
        string? problem = BadBlockMath.TryParse(disk.BadBlocksText, diskBytes, bad);
        if (problem is not null)
        {
            return BadRangeReport.Unknown($"{disk.BadBlocksPath}: {problem}; the list is not trusted");
        }
        bool truncated = disk.BadBlocksText.Length >= BadBlockMath.TruncationThreshold;
        string listed = string.Create(CultureInfo.InvariantCulture, $"{disk.DiskName}/badblocks in {disk.RegionName}: {bad.Count} range(s) on the device");
        if (bad.Count == 0)
        {
            return new BadRangeReport([], BadRangeCoverage.Complete, listed);
        }
        var extents = new List<FileExtent>();
        int errno = FileExtents.Read(fd, size, extents);
        if (errno != 0)
        {
            return BadRangeReport.Unknown(string.Create(CultureInfo.InvariantCulture,
                $"{listed}, but FIEMAP of '{path}' failed ({Errno.Name(errno)}): the file's blocks cannot be placed on the device"));
        }
        var placed = new List<PlacedRange>(extents.Count);
        int unplaced = 0;
        foreach (FileExtent e in extents)
        {
            if (!e.HasPhysicalAddress || e.Physical > long.MaxValue - partitionStart)
            {
                unplaced++;
                continue;
            }
            placed.Add(new PlacedRange((ulong)(e.Physical + partitionStart), e.Length, e.Logical));
        }
        List<PmemRange> ranges = BadBlockMath.Window(BadBlockMath.ToSourceOffsets(bad, 0, placed), 0, size);
        string partition = partitionStart != 0
            ? string.Create(CultureInfo.InvariantCulture, $" and the partition's start (sector {partitionStart / BadBlockMath.SectorSize})")
            : "";
        string detail = string.Create(CultureInfo.InvariantCulture, $"{listed}, placed through the file's {extents.Count} extent(s){partition}");
        if (unplaced > 0)
        {
            return BadRangeReport.Unknown(string.Create(CultureInfo.InvariantCulture, $"{detail}; {unplaced} extent(s) have no physical address yet (delayed, inline or encoded)"), ranges.AsReadOnly());
        }
        if (truncated)
        {
            return BadRangeReport.Unknown(detail + "; the kernel's list fills a page and may be cut short", ranges.AsReadOnly());
        }
        return new BadRangeReport(ranges.AsReadOnly(), BadRangeCoverage.Complete, detail);
    }

    private static bool TryParseSectors(string? text, out ulong value)
    {
        value = 0;
        return text is not null && ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }
}
