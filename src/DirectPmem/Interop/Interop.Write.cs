using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static unsafe partial class Libc
{
    [LibraryImport(LibraryName, EntryPoint = "write", SetLastError = true)]
    internal static partial nint Write(int fd, byte* buffer, nuint count);
}
