using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static partial class Libc
{
    // fallocate(2) itself, not glibc's posix_fallocate, which on a file system without fallocate
    // emulates it by writing bytes into the file.
    [LibraryImport(LibraryName, EntryPoint = "fallocate", SetLastError = true)]
    internal static partial int FAllocate(int fd, int mode, long offset, long length);
}
