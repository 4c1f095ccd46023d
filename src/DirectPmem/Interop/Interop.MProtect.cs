using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static partial class Libc
{
    [LibraryImport(LibraryName, EntryPoint = "mprotect", SetLastError = true)]
    internal static partial int MProtect(nint addr, nuint length, int prot);
}
