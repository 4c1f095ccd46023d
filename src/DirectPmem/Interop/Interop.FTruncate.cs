using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static partial class Libc
{
    [LibraryImport(LibraryName, EntryPoint = "ftruncate", SetLastError = true)]
    internal static partial int FTruncate(int fd, long length);
}
