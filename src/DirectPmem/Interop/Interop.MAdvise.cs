using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static partial class Libc
{
    [LibraryImport(LibraryName, EntryPoint = "madvise", SetLastError = true)]
    internal static partial int MAdvise(nint addr, nuint length, int advice);
}
