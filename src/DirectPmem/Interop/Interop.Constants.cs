namespace DirectPmem.Interop;

// Kernel flag values with their kernel spellings, for x86-64 Linux. Values that differ on other
// architectures are marked; DirectPmem supports x86-64 only.
internal static partial class Libc
{
    // <sys/mman.h> protection
    internal const int PROT_NONE = 0x0;
    internal const int PROT_READ = 0x1;
    internal const int PROT_WRITE = 0x2;
    internal const int PROT_EXEC = 0x4;

    // <sys/mman.h> mmap flags
    internal const int MAP_SHARED = 0x01;
    internal const int MAP_PRIVATE = 0x02;            // only for the PROT_NONE address reservation
    internal const int MAP_SHARED_VALIDATE = 0x03;
    internal const int MAP_FIXED = 0x10;
    internal const int MAP_ANONYMOUS = 0x20;
    internal const int MAP_NORESERVE = 0x4000;        // differs on sparc/mips
    internal const int MAP_POPULATE = 0x8000;         // differs on mips
    internal const int MAP_HUGETLB = 0x40000;         // differs on mips/sparc/alpha
    internal const int MAP_SYNC = 0x80000;
    internal const int MAP_FIXED_NOREPLACE = 0x100000;
    internal const int MAP_HUGE_SHIFT = 26;
    internal const int MAP_HUGE_2MB = 21 << MAP_HUGE_SHIFT;
    internal const int MAP_HUGE_1GB = 30 << MAP_HUGE_SHIFT;
    internal static readonly nint MAP_FAILED = -1;

    // madvise advice
    internal const int MADV_DONTFORK = 10;
    internal const int MADV_DOFORK = 11;
    internal const int MADV_HUGEPAGE = 14;
    internal const int MADV_NOHUGEPAGE = 15;
    internal const int MADV_POPULATE_READ = 22;       // Linux 5.14+
    internal const int MADV_POPULATE_WRITE = 23;      // Linux 5.14+

    // msync flags
    internal const int MS_ASYNC = 1;
    internal const int MS_INVALIDATE = 2;
    internal const int MS_SYNC = 4;

    // <fcntl.h> open flags (octal in the headers)
    internal const int O_RDONLY = 0x0;
    internal const int O_WRONLY = 0x1;
    internal const int O_RDWR = 0x2;
    internal const int O_CREAT = 0x40;
    internal const int O_EXCL = 0x80;
    internal const int O_NOCTTY = 0x100;
    internal const int O_TRUNC = 0x200;
    internal const int O_NONBLOCK = 0x800;
    internal const int O_CLOEXEC = 0x80000;

    // fallocate modes
    internal const int FALLOC_FL_KEEP_SIZE = 0x01;
    internal const int FALLOC_FL_PUNCH_HOLE = 0x02;

    // FIEMAP (linux/fiemap.h, linux/fs.h): FS_IOC_FIEMAP = _IOWR('f', 11, struct fiemap)
    internal const nuint FS_IOC_FIEMAP = 0xC020660B;
    internal const uint FIEMAP_FLAG_SYNC = 0x1;
    internal const uint FIEMAP_EXTENT_LAST = 0x1;
    internal const uint FIEMAP_EXTENT_UNKNOWN = 0x2;
    internal const uint FIEMAP_EXTENT_DELALLOC = 0x4;
    internal const uint FIEMAP_EXTENT_ENCODED = 0x8;
    internal const uint FIEMAP_EXTENT_DATA_INLINE = 0x200;
    internal const uint FIEMAP_EXTENT_DATA_TAIL = 0x400;

    // memfd_create flags
    internal const uint MFD_CLOEXEC = 0x1;
    internal const uint MFD_ALLOW_SEALING = 0x2;
    internal const uint MFD_HUGETLB = 0x4;
    internal const uint MFD_NOEXEC_SEAL = 0x8;        // Linux 6.3+

    // flock operations
    internal const int LOCK_SH = 1;
    internal const int LOCK_EX = 2;
    internal const int LOCK_NB = 4;
    internal const int LOCK_UN = 8;

    // stat st_mode
    internal const uint S_IFMT = 0xF000;
    internal const uint S_IFREG = 0x8000;
    internal const uint S_IFCHR = 0x2000;
    internal const uint S_IFDIR = 0x4000;
    internal const uint S_IFIFO = 0x1000;
    internal const uint S_IFBLK = 0x6000;
    internal const uint S_IFSOCK = 0xC000;
    internal const uint S_IFLNK = 0xA000;

    // statfs f_type (include/uapi/linux/magic.h); FileSystemTypes names them.
    internal const long TMPFS_MAGIC = 0x01021994;
    internal const long HUGETLBFS_MAGIC = 0x958458f6;
    internal const long RAMFS_MAGIC = 0x858458f6;
    internal const long EXT4_SUPER_MAGIC = 0xEF53; // also ext2 and ext3
    internal const long XFS_SUPER_MAGIC = 0x58465342;
    internal const long BTRFS_SUPER_MAGIC = 0x9123683E;
    internal const long F2FS_SUPER_MAGIC = 0xF2F52010;
    internal const long OVERLAYFS_SUPER_MAGIC = 0x794c7630;
    internal const long V9FS_MAGIC = 0x01021997;
    internal const long FUSE_SUPER_MAGIC = 0x65735546; // also virtiofs
    internal const long NFS_SUPER_MAGIC = 0x6969;
    internal const long SMB2_MAGIC_NUMBER = 0xFE534D42;
    internal const long CIFS_MAGIC_NUMBER = 0xFF534D42;
    internal const long VBOXSF_MAGIC = 0x786f4256;
    internal const long SQUASHFS_MAGIC = 0x73717368;
    internal const long ISOFS_SUPER_MAGIC = 0x9660;
    internal const long PROC_SUPER_MAGIC = 0x9fa0;
    internal const long SYSFS_MAGIC = 0x62656572;

    // statx
    internal const int AT_EMPTY_PATH = 0x1000;
    internal const ulong STATX_ATTR_DAX = 0x200000;
}
