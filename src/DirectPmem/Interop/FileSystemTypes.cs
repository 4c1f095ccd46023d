using System.Globalization;

namespace DirectPmem.Interop;

/// <summary>
/// Names for statfs <c>f_type</c> values, and the plain-words explanation of a file system that refuses a
/// shared writable mapping (9p, as WSL2's <c>/mnt/c</c> and many VM shares are; some FUSE and network file systems).
/// </summary>
internal static class FileSystemTypes
{
    /// <summary>The usual name of a file system type ("9p", "ext4"), or its magic in hex when it is not one DirectPmem knows.</summary>
    internal static string Name(long fType) => (fType & 0xFFFFFFFFL) switch
    {
        Libc.TMPFS_MAGIC => "tmpfs",
        Libc.HUGETLBFS_MAGIC => "hugetlbfs",
        Libc.RAMFS_MAGIC => "ramfs",
        Libc.EXT4_SUPER_MAGIC => "ext2/ext3/ext4",
        Libc.XFS_SUPER_MAGIC => "xfs",
        Libc.BTRFS_SUPER_MAGIC => "btrfs",
        Libc.F2FS_SUPER_MAGIC => "f2fs",
        Libc.OVERLAYFS_SUPER_MAGIC => "overlayfs",
        Libc.V9FS_MAGIC => "9p",
        Libc.FUSE_SUPER_MAGIC => "fuse (or virtiofs)",
        Libc.NFS_SUPER_MAGIC => "nfs",
        Libc.SMB2_MAGIC_NUMBER => "smb2",
        Libc.CIFS_MAGIC_NUMBER => "cifs",
        Libc.VBOXSF_MAGIC => "vboxsf",
        Libc.SQUASHFS_MAGIC => "squashfs",
        Libc.ISOFS_SUPER_MAGIC => "iso9660",
        Libc.PROC_SUPER_MAGIC => "proc",
        Libc.SYSFS_MAGIC => "sysfs",
        _ => "type 0x" + (fType & 0xFFFFFFFFL).ToString("x", CultureInfo.InvariantCulture),
    };

    /// <summary>
    /// Whether a failed shared writable mmap (EINVAL or ENODEV) of a file on this file system may be the file
    /// system refusing such mappings, rather than a bad argument: false for the local file systems known to
    /// support them.
    /// </summary>
    internal static bool MayRefuseSharedWritableMapping(long fType) => (fType & 0xFFFFFFFFL) switch
    {
        Libc.TMPFS_MAGIC or Libc.HUGETLBFS_MAGIC or Libc.RAMFS_MAGIC or Libc.EXT4_SUPER_MAGIC or Libc.XFS_SUPER_MAGIC
            or Libc.BTRFS_SUPER_MAGIC or Libc.F2FS_SUPER_MAGIC => false,
        _ => true,
    };

    /// <summary>The same judgement from the type name in /proc/self/mountinfo.</summary>
    internal static bool MayRefuseSharedWritableMapping(string mountType)
        => mountType is not ("ext2" or "ext3" or "ext4" or "xfs" or "btrfs" or "f2fs" or "tmpfs" or "hugetlbfs" or "ramfs" or "rootfs");

    /// <summary>
    /// The hint for a shared writable mapping of the file open as <paramref name="fd"/> that failed with EINVAL or
    /// ENODEV, or <see langword="null"/> when its file system is one known to take such mappings (the failure then
    /// has another cause). The type comes from /proc/self/mountinfo (the mount whose device is the file's): statfs
    /// cannot tell, because 9p passes the host file system's f_type through.
    /// </summary>
    internal static unsafe string? SharedWritableRefusalHint(int fd, string path)
    {
        // Best effort throughout: a call that fails leaves the plain errno message.
        Libc.StatFs fs;
        Libc.Stat st;
        if (Libc.FStatFs(fd, &fs) != 0 || Libc.FStat(fd, &st) != 0)
        {
            return null;
        }
        string? mountType;
        try
        {
            mountType = MountType(File.ReadLines("/proc/self/mountinfo"), Libc.Major(st.st_dev), Libc.Minor(st.st_dev));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            mountType = null;
        }
        bool mayRefuse = mountType is not null ? MayRefuseSharedWritableMapping(mountType) : MayRefuseSharedWritableMapping(fs.f_type);
        return mayRefuse ? SharedWritableMappingRefused(path, mountType ?? Name(fs.f_type), fs.f_type) : null;
    }

    /// <summary>The file system type of the first mount in <paramref name="mountInfo"/> (lines of /proc/self/mountinfo) on device major:minor.</summary>
    internal static string? MountType(IEnumerable<string> mountInfo, uint major, uint minor)
    {
        string device = string.Create(CultureInfo.InvariantCulture, $"{major}:{minor}");
        foreach (string line in mountInfo)
        {
            // id parent major:minor root mount-point options [optional...] - fstype source super-options
            string[] fields = line.Split(' ');
            int separator = Array.IndexOf(fields, "-");
            if (fields.Length > 2 && fields[2] == device && separator > 0 && separator + 1 < fields.Length)
            {
                return fields[separator + 1];
            }
        }
        return null;
    }

    /// <summary>The hint for a shared writable mapping the file system at <paramref name="path"/> refused.</summary>
    internal static string SharedWritableMappingRefused(string path, string fileSystem, long fType)
        => $"The file system holding '{path}' ({fileSystem}; statfs f_type 0x{(fType & 0xFFFFFFFFL).ToString("x", CultureInfo.InvariantCulture)}) "
            + "refuses shared writable memory mappings (MAP_SHARED with PROT_WRITE), as 9p shares (WSL2's /mnt/c, many VM shared "
            + "folders), some FUSE and network file systems do. Put the file on a local ext4 or xfs file system (page cache, made "
            + "durable with msync), or on ext4 or xfs mounted with -o dax on persistent memory for byte-addressable persistence.";
}
