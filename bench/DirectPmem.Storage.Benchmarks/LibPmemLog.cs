using System.Runtime.InteropServices;

namespace DirectPmem.Storage.Benchmarks;

/// <summary>PMDK's libpmemlog (Debian libpmemlog1, PMDK 1.12; dropped in PMDK 2.0), the baseline.</summary>
internal static unsafe partial class LibPmemLog
{
    private const string Library = "libpmemlog.so.1";

    /// <summary>Loads libpmemlog, or says why not.</summary>
    public static bool TryLoad(out string reason)
    {
        if (NativeLibrary.TryLoad(Library, out _))
        {
            reason = "";
            return true;
        }
        reason = $"{Library} is not installed (sudo bench/setup-pmdk.sh installs Debian's libpmemlog1)";
        return false;
    }

    [LibraryImport(Library, EntryPoint = "pmemlog_create", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial nint Create(string path, nuint poolSize, uint mode);

    [LibraryImport(Library, EntryPoint = "pmemlog_append", SetLastError = true)]
    public static partial int Append(nint pool, byte* buffer, nuint count);

    [LibraryImport(Library, EntryPoint = "pmemlog_rewind")]
    public static partial void Rewind(nint pool);

    [LibraryImport(Library, EntryPoint = "pmemlog_nbyte")]
    public static partial nuint NByte(nint pool);

    [LibraryImport(Library, EntryPoint = "pmemlog_close")]
    public static partial void Close(nint pool);

    [LibraryImport(Library, EntryPoint = "pmemlog_errormsg")]
    public static partial byte* ErrorMessage();

    public static string LastError() => Marshal.PtrToStringUTF8((nint)ErrorMessage()) ?? "unknown error";
}

/// <summary>PMDK's libpmem (libpmemlog's own copy engine), for the breakdown of an append.</summary>
internal static unsafe partial class LibPmem
{
    private const string Library = "libpmem.so.1";

    [LibraryImport(Library, EntryPoint = "pmem_map_file", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial nint MapFile(string path, nuint length, int flags, uint mode, out nuint mappedLength, out int isPmem);

    [LibraryImport(Library, EntryPoint = "pmem_unmap")]
    public static partial int Unmap(nint address, nuint length);

    [LibraryImport(Library, EntryPoint = "pmem_memcpy_nodrain")]
    public static partial void* MemcpyNoDrain(void* destination, void* source, nuint length);

    [LibraryImport(Library, EntryPoint = "pmem_drain")]
    public static partial void Drain();
}

internal static partial class LibC
{
    // libpmem reads PMEM_IS_PMEM_FORCE when it loads; .NET's Environment.SetEnvironmentVariable does not
    // reach the native environment, so it is set with setenv before libpmemlog is loaded.
    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int SetEnv(string name, string value, int overwrite);
}
