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
    // Both calls skip the GC transition, as C calls them: they never block, allocate or call back,
    // and with the transition libpmem would pay 1-5 % that DirectPmem does not (bench/README.md,
    // floor check). A 16 MiB copy holds off a GC for under a millisecond.
    [LibraryImport(Library, EntryPoint = "pmem_persist")]
    [SuppressGCTransition]
    internal static partial void Persist(void* address, nuint length);

    // Non-temporal stores from PMEM_MOVNT_THRESHOLD (256) up, flushes the rest, then SFENCE.
    [LibraryImport(Library, EntryPoint = "pmem_memcpy_persist")]
    [SuppressGCTransition]
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

    // Environment.SetEnvironmentVariable does not reach the native environment that libpmem reads.
    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    internal static partial int SetEnv(string name, string value, int overwrite);

    // Pid 0 is the calling thread: Process.ProcessorAffinity pins the process's main thread only.
    [LibraryImport("libc", EntryPoint = "sched_setaffinity", SetLastError = true)]
    internal static partial int SchedSetAffinity(int pid, nuint size, ulong* mask);

    [LibraryImport("libc", EntryPoint = "sched_getaffinity", SetLastError = true)]
    internal static partial int SchedGetAffinity(int pid, nuint size, ulong* mask);
}

/// <summary>
/// PMDK's libpmemlog (libpmemlog.so.1; Debian's libpmemlog1, PMDK 1.12, dropped in PMDK 2.0), loaded
/// only for <c>--compare libpmemlog</c>. It links libpmem.so.1, which reads PMEM_IS_PMEM_FORCE when it
/// loads: <see cref="LibC.SetEnv"/> sets it first, so that a log on tmpfs flushes with CLWB rather than msync.
/// </summary>
internal static unsafe partial class LibPmemLog
{
    private const string Library = "libpmemlog.so.1";

    internal static bool TryLoad()
    {
        if (NativeLibrary.TryLoad(Library, out nint handle))
        {
            NativeLibrary.Free(handle);
            return true;
        }
        return false;
    }

    [LibraryImport(Library, EntryPoint = "pmemlog_create", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    internal static partial nint Create(string path, nuint poolSize, uint mode);

    [LibraryImport(Library, EntryPoint = "pmemlog_append", SetLastError = true)]
    internal static partial int Append(nint pool, byte* buffer, nuint count);

    [LibraryImport(Library, EntryPoint = "pmemlog_rewind")]
    internal static partial void Rewind(nint pool);

    [LibraryImport(Library, EntryPoint = "pmemlog_nbyte")]
    internal static partial nuint NByte(nint pool);

    [LibraryImport(Library, EntryPoint = "pmemlog_close")]
    internal static partial void Close(nint pool);

    [LibraryImport(Library, EntryPoint = "pmemlog_errormsg")]
    private static partial byte* ErrorMessage();

    internal static string LastError() => Marshal.PtrToStringUTF8((nint)ErrorMessage()) ?? "unknown error";
}
