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
    /// Whether a failed shared writable mmap (EINVAL or ENODEV) of a file on this file system is the file
    /// system refusing such mappings, rather than a bad argument: false for the local file systems known to
    /// support them.
    /// </summary>
    internal static bool MayRefuseSharedWritableMapping(long fType) => (fType & 0xFFFFFFFFL) switch
    {
        Libc.TMPFS_MAGIC or Libc.HUGETLBFS_MAGIC or Libc.RAMFS_MAGIC or Libc.EXT4_SUPER_MAGIC or Libc.XFS_SUPER_MAGIC
            or Libc.BTRFS_SUPER_MAGIC or Libc.F2FS_SUPER_MAGIC => false,
        _ => true,
    };

    /// <summary>The hint for a shared writable mapping the file system at <paramref name="path"/> refused.</summary>
    internal static string SharedWritableMappingRefused(string path, long fType)
        => $"The file system holding '{path}' ({Name(fType)}, statfs f_type 0x{(fType & 0xFFFFFFFFL).ToString("x", CultureInfo.InvariantCulture)}) "
            + "refuses shared writable memory mappings (MAP_SHARED with PROT_WRITE), as 9p shares (WSL2's /mnt/c, many VM shared "
            + "folders), some FUSE and network file systems do. Put the file on a local ext4 or xfs file system (page cache, made "
            + "durable with msync), or on ext4 or xfs mounted with -o dax on persistent memory for byte-addressable persistence.";
}
