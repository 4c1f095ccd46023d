using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static partial class Libc
{
    // posix_fallocate returns the error number instead of setting errno: callers pass the
    // return value to the checker as the errno.
    [LibraryImport(LibraryName, EntryPoint = "posix_fallocate")]
    internal static partial int PosixFAllocate(int fd, long offset, long length);
}
