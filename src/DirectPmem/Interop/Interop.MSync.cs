using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static partial class Libc
{
    [LibraryImport(LibraryName, EntryPoint = "msync", SetLastError = true)]
    internal static partial int MSync(nint addr, nuint length, int flags);
}
