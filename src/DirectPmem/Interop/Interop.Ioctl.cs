using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static unsafe partial class Libc
{
    // ioctl(2) is variadic in C; on x86-64 (and arm64 Linux) a pointer third argument is passed
    // exactly as in a non-variadic call, so a fixed three-argument import is sound.
    [LibraryImport(LibraryName, EntryPoint = "ioctl", SetLastError = true)]
    internal static partial int Ioctl(int fd, nuint request, void* argument);
}
