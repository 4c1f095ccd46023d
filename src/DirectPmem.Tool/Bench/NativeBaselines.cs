using System.Runtime.InteropServices;

namespace DirectPmem.Tool.Bench;

/// <summary>PMDK's libpmem (libpmem.so.1; Debian's libpmem1, installed by bench/setup-pmdk.sh), loaded only for <c>--compare libpmem</c>.</summary>
internal static unsafe partial class LibPmem
{
    private const string Library = "libpmem.so.1";

    internal static bool TryLoad(out string? path)
    {
        if (NativeLibrary.TryLoad(Library, out nint handle))
        {
            path = Library;
            NativeLibrary.Free(handle);
            return true;
        }
        path = null;
        return false;
    }

    // pmem_persist flushes whatever the memory is (CLWB/CLFLUSHOPT/CLFLUSH + SFENCE).
    [LibraryImport(Library, EntryPoint = "pmem_persist")]
    internal static partial void Persist(void* address, nuint length);

    // Non-temporal stores from PMEM_MOVNT_THRESHOLD (256) up, flushes the rest, then SFENCE.
    [LibraryImport(Library, EntryPoint = "pmem_memcpy_persist")]
    internal static partial void* MemcpyPersist(void* destination, void* source, nuint length);

    [LibraryImport(Library, EntryPoint = "pmem_check_version")]
    internal static partial nint CheckVersion(uint major, uint minor);
}

/// <summary>msync, for the comparison everyone understands.</summary>
internal static unsafe partial class LibC
{
    internal const int MS_SYNC = 4;

    [LibraryImport("libc", EntryPoint = "msync", SetLastError = true)]
    internal static partial int MSync(void* address, nuint length, int flags);
}
