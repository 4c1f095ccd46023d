using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static partial class Libc
{
    internal const int W_OK = 2;

    [LibraryImport(LibraryName, EntryPoint = "access", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int Access(string path, int mode);
}
