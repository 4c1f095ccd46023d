using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static partial class Libc
{
    // open(2) is variadic in C; declaring the mode as a fixed third integer argument is the
    // usual binding and is ABI-compatible on x86-64 SysV for integer arguments.
    [LibraryImport(LibraryName, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int Open(string path, int flags, uint mode);
}
