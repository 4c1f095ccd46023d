using System.Globalization;

namespace DirectPmem.Interop;

/// <summary>
/// The pmem block device behind a file system, as sysfs shows it: <c>dev/block/MAJ:MIN</c> links to
/// the disk (<c>.../regionN/namespaceN.M/block/pmemN</c>, or <c>.../pfnN.M/block/pmemN.M</c> for an
/// fsdax namespace with an info block) or to a partition of it (<c>.../pmemN/pmemNp1</c>, whose
/// <c>start</c> is its first sector on the disk). The disk's <c>badblocks</c> lists 512-byte
/// sectors from the disk's sector 0, which is the namespace's data start (the kernel's
/// <c>pmem_attach_disk</c> populates it for <c>[res->start + data_offset, res->end]</c>).
/// Raw text only: the Mapping layer validates it.
/// </summary>
internal sealed record NdBlockDevice(
    string DiskName,
    string DiskPath,
    string RegionName,
    string? PartitionStartText,
    string PartitionStartPath,
    string? DiskSizeText,
    string DiskSizePath,
    string? BadBlocksText,
    string BadBlocksPath)
{
    /// <summary>What sysfs says about block device <c>MAJ:MIN</c>.</summary>
    internal enum Lookup
    {
        /// <summary>Found on an NVDIMM region: <c>device</c> is set.</summary>
        Found,

        /// <summary><c>dev/block/MAJ:MIN</c> does not exist: an anonymous device (tmpfs, overlay, btrfs, NFS).</summary>
        NotABlockDevice,

        /// <summary>A block device outside every NVDIMM region (a disk).</summary>
        NotOnNvdimm,

        /// <summary>A stacked device (device-mapper, md) with <c>slaves</c>: its sectors are not the pmem device's.</summary>
        Stacked,

        /// <summary>A sector-mode namespace (<c>.../bttN.M/block/pmemN.Ms</c>): the BTT remaps its sectors, and its disk lists no bad blocks.</summary>
        SectorMode,
    }

    /// <summary>Finds the pmem disk behind block device <c>MAJ:MIN</c> under <paramref name="sysfsRoot"/>.</summary>
    internal static Lookup Find(string sysfsRoot, uint major, uint minor, out NdBlockDevice? device, out string node)
    {
        device = null;
        node = Path.Join(sysfsRoot, "dev", "block", string.Create(CultureInfo.InvariantCulture, $"{major}:{minor}"));
        if (!Directory.Exists(node))
        {
            return Lookup.NotABlockDevice;
        }
        string? resolved = Sysfs.TryResolvePath(node);
        if (resolved is null)
        {
            return Lookup.NotABlockDevice;
        }
        string slaves = Path.Join(resolved, "slaves");
        if (Directory.Exists(slaves) && Directory.EnumerateFileSystemEntries(slaves).Any())
        {
            return Lookup.Stacked;
        }
        string? region = NdRegionLocator.FindRegion(sysfsRoot, block: true, major, minor);
        if (region is null)
        {
            return Lookup.NotOnNvdimm;
        }
        bool partition = File.Exists(Path.Join(resolved, "partition"));
        string disk = partition ? Path.GetDirectoryName(resolved) ?? resolved : resolved;
        // .../bttN.M/block/pmemN.Ms: the disk's parent's parent is the BTT personality.
        string? personality = Path.GetFileName(Path.GetDirectoryName(Path.GetDirectoryName(disk)) ?? "");
        if (personality is not null && personality.StartsWith("btt", StringComparison.Ordinal))
        {
            return Lookup.SectorMode;
        }
        string startPath = Path.Join(resolved, "start");
        string sizePath = Path.Join(disk, "size");
        string badPath = Path.Join(disk, "badblocks");
        device = new NdBlockDevice(Path.GetFileName(disk), disk, Path.GetFileName(region),
            partition ? Sysfs.TryReadText(startPath) ?? "" : null, startPath,
            Sysfs.TryReadText(sizePath), sizePath,
            Sysfs.TryReadText(badPath), badPath);
        return Lookup.Found;
    }
}
