using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static partial class Libc
{
    [LibraryImport(LibraryName, EntryPoint = "fdatasync", SetLastError = true)]
    internal static partial int FDataSync(int fd);
}
