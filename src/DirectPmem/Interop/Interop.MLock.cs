using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static partial class Libc
{
    [LibraryImport(LibraryName, EntryPoint = "mlock", SetLastError = true)]
    internal static partial int MLock(nint addr, nuint length);
}
