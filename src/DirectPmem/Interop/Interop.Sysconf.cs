using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static partial class Libc
{
    [LibraryImport(LibraryName, EntryPoint = "sysconf", SetLastError = true)]
    internal static partial long Sysconf(int name);
}
