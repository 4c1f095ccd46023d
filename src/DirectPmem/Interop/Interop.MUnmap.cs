using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static partial class Libc
{
    [LibraryImport(LibraryName, EntryPoint = "munmap", SetLastError = true)]
    internal static partial int MUnmap(nint addr, nuint length);
}
