using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static partial class Libc
{
    [LibraryImport(LibraryName, EntryPoint = "memfd_create", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int MemfdCreate(string name, uint flags);
}
