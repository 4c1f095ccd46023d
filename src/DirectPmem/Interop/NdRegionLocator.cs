using System.Globalization;

namespace DirectPmem.Interop;

/// <summary>
/// The deep-flush control of the NVDIMM region behind a mapping, resolved once when the mapping is
/// made: the region (<c>regionN</c>), its <c>deep_flush</c> attribute if the kernel shows one, and
/// whether this process may write it. Writing <c>1</c> there runs the kernel's <c>nvdimm_flush</c>
/// of the region: the memory controller's write-pending queues are flushed through the flush hints.
/// </summary>
internal sealed class DeepFlushControl
{
    internal DeepFlushControl(string regionName, string regionPath, string? attributePath, bool writable)
    {
        RegionName = regionName;
        RegionPath = regionPath;
        AttributePath = attributePath;
        Writable = writable;
    }

    /// <summary>The region's name, <c>regionN</c>.</summary>
    internal string RegionName { get; }

    /// <summary>The region's directory in the sysfs device tree (every link resolved).</summary>
    internal string RegionPath { get; }

    /// <summary>The region's <c>deep_flush</c> attribute, or null when the kernel hides it (the region's flush mechanism is unknown).</summary>
    internal string? AttributePath { get; }

    /// <summary>Whether <c>deep_flush</c> exists and may be written (see <see cref="NdRegionLocator.IsWritable"/>).</summary>
    internal bool Writable { get; }

    /// <summary>
    /// Writes <c>1</c> to <c>deep_flush</c>: one open, one one-byte write, one close. O_NONBLOCK
    /// keeps a wrong attribute (a FIFO nobody reads) from hanging the caller.
    /// </summary>
    /// <exception cref="PmemException">open or write failed; the message names the call, the errno and the attribute.</exception>
    internal unsafe void Write()
    {
        string path = AttributePath ?? throw new InvalidOperationException($"{RegionName} has no deep_flush attribute.");
        const string Hint = "The range was persisted, but the region's write-pending queues were not flushed.";
        int fd = Libc.Open(path, Libc.O_WRONLY | Libc.O_CLOEXEC | Libc.O_NONBLOCK | Libc.O_NOCTTY, 0);
        if (fd < 0)
        {
            throw SyscallError.Create(SyscallError.LastErrno, "open(O_WRONLY) of deep_flush", path, hint: Hint);
        }
        try
        {
            byte one = (byte)'1';
            nint written = Libc.Write(fd, &one, 1);
            if (written < 0)
            {
                throw SyscallError.Create(SyscallError.LastErrno, "write of deep_flush", path, hint: Hint);
            }
            if (written != 1)
            {
                throw new PmemException(string.Create(CultureInfo.InvariantCulture, $"write of deep_flush wrote {written} of 1 byte, path '{path}'. {Hint}"),
                    "write of deep_flush", Errno.EIO, path);
            }
        }
        finally
        {
            _ = Libc.Close(fd);
        }
    }
}

/// <summary>
/// Finds the NVDIMM region behind a device number the way the kernel lays sysfs out (what PMDK's
/// <c>pmem2_get_region_id</c> reads): <c>dev/char/MAJ:MIN</c> (device-DAX) or <c>dev/block/MAJ:MIN</c>
/// (the file system's block device, a partition included) links into the device tree, and the
/// nearest ancestor directory named <c>regionN</c> on the nd bus is the region. Devices outside an
/// NVDIMM region (disks, tmpfs and other anonymous block numbers, CXL or soft-reserved memory
/// without one) have none.
/// </summary>
internal static class NdRegionLocator
{
    /// <summary>The deep-flush control of the region behind a device number under <paramref name="sysfsRoot"/>, or null when it has no region.</summary>
    /// <param name="sysfsRoot">The directory that plays <c>/sys</c>.</param>
    /// <param name="block">A block device (the <c>st_dev</c> of a file) rather than a character device (a device-DAX node's <c>st_rdev</c>).</param>
    /// <param name="major">The major number.</param>
    /// <param name="minor">The minor number.</param>
    internal static DeepFlushControl? ForDevice(string sysfsRoot, bool block, uint major, uint minor)
    {
        string? region = FindRegion(sysfsRoot, block, major, minor);
        return region is null ? null : ForRegion(region);
    }

    /// <summary>The region directory behind a device number, or null.</summary>
    internal static string? FindRegion(string sysfsRoot, bool block, uint major, uint minor)
    {
        string link = Path.Join(sysfsRoot, "dev", block ? "block" : "char", string.Create(CultureInfo.InvariantCulture, $"{major}:{minor}"));
        if (!Directory.Exists(link))
        {
            return null;
        }
        string? device = Sysfs.TryResolvePath(link);
        // The walk stays inside the sysfs tree: a fixture's own ancestors are not searched.
        string inside = (Sysfs.TryResolvePath(sysfsRoot) ?? sysfsRoot).TrimEnd('/') + "/";
        for (string? dir = device; dir is not null && dir.StartsWith(inside, StringComparison.Ordinal); dir = Path.GetDirectoryName(dir))
        {
            if (Sysfs.IsKernelName(Path.GetFileName(dir), "region") && OnNdBus(dir))
            {
                return dir;
            }
        }
        return null;
    }

    /// <summary>The deep-flush control of a region directory.</summary>
    internal static DeepFlushControl ForRegion(string regionPath)
    {
        string attribute = Path.Join(regionPath, "deep_flush");
        bool present = File.Exists(attribute);
        return new DeepFlushControl(Path.GetFileName(regionPath), regionPath, present ? attribute : null, present && IsWritable(attribute));
    }

    /// <summary>
    /// Whether a sysfs attribute may be written: its mode has a write bit and access(W_OK) agrees.
    /// Both are needed: kernfs refuses to open a file without a write bit for writing even for root,
    /// whom access(W_OK) always lets through; and an unprivileged user needs the permission.
    /// </summary>
    internal static unsafe bool IsWritable(string path)
    {
        const uint AnyWriteBit = 0x92; // 0222
        Libc.Stat st;
        return Libc.StatPath(path, &st) == 0 && (st.st_mode & AnyWriteBit) != 0 && Libc.Access(path, Libc.W_OK) == 0;
    }

    // A CXL region is also called regionN: only one on the nd bus holds deep_flush. A tree without
    // a subsystem link (a hand-made fixture) is taken as the nd bus.
    private static bool OnNdBus(string dir)
    {
        string? subsystem = Sysfs.ReadLink(Path.Join(dir, "subsystem"));
        return subsystem is null || Path.GetFileName(subsystem.TrimEnd('/')) == "nd";
    }
}
