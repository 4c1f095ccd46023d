using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static partial class Libc
{
    [LibraryImport(LibraryName, EntryPoint = "mmap", SetLastError = true)]
    internal static partial nint MMap(nint addr, nuint length, int prot, int flags, int fd, long offset);
}
