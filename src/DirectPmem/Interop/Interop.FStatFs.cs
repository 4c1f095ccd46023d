using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static unsafe partial class Libc
{
    /// <summary><c>struct statfs</c> on x86-64 (120 bytes); only the file-system magic is read.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 120)]
    internal struct StatFs
    {
        public long f_type;
        public long f_bsize;
    }

    [LibraryImport(LibraryName, EntryPoint = "fstatfs", SetLastError = true)]
    internal static partial int FStatFs(int fd, StatFs* buf);
}
