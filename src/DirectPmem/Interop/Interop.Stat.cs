using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static unsafe partial class Libc
{
    // glibc 2.33+ exports stat as a real symbol (earlier versions only __xstat).
    [LibraryImport(LibraryName, EntryPoint = "stat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int StatPath(string path, Stat* buf);
}
