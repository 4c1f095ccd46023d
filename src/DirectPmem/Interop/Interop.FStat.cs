using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static unsafe partial class Libc
{
    /// <summary><c>struct stat</c> as laid out on x86-64 (144 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct Stat
    {
        public ulong st_dev;
        public ulong st_ino;
        public ulong st_nlink;
        public uint st_mode;
        public uint st_uid;
        public uint st_gid;
        public int __pad0;
        public ulong st_rdev;
        public long st_size;
        public long st_blksize;
        public long st_blocks;
        public long st_atime;
        public long st_atime_nsec;
        public long st_mtime;
        public long st_mtime_nsec;
        public long st_ctime;
        public long st_ctime_nsec;
        public long __unused0;
        public long __unused1;
        public long __unused2;
    }

    // glibc 2.33+ exports fstat as a real symbol (earlier versions only __fxstat).
    [LibraryImport(LibraryName, EntryPoint = "fstat", SetLastError = true)]
    internal static partial int FStat(int fd, Stat* buf);

    /// <summary>Major device number, as glibc's <c>gnu_dev_major</c>.</summary>
    internal static uint Major(ulong dev) => (uint)(((dev >> 32) & 0xFFFFF000) | ((dev >> 8) & 0xFFF));

    /// <summary>Minor device number, as glibc's <c>gnu_dev_minor</c>.</summary>
    internal static uint Minor(ulong dev) => (uint)(((dev >> 12) & 0xFFFFFF00) | (dev & 0xFF));
}
