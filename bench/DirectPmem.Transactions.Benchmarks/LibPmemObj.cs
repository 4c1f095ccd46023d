using System.Runtime.InteropServices;

namespace DirectPmem.Transactions.Benchmarks;

/// <summary>PMDK's libpmemobj (Debian libpmemobj1, PMDK 1.12) through P/Invoke: just what the commit benchmark calls.</summary>
internal static partial class LibPmemObj
{
    private const string Library = "libpmemobj.so.1";

    [StructLayout(LayoutKind.Sequential)]
    public struct PMEMoid
    {
        public ulong PoolUuidLo;
        public ulong Off;
    }

    public static bool IsAvailable(out string reason)
    {
        if (NativeLibrary.TryLoad(Library, out nint handle))
        {
            NativeLibrary.Free(handle);
            reason = "";
            return true;
        }
        reason = $"{Library} is not installed (Debian: apt-get install libpmemobj1, or sudo bench/setup-pmdk.sh)";
        return false;
    }

    [LibraryImport(Library, EntryPoint = "pmemobj_create", StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint Create(string path, string layout, nuint poolSize, uint mode);

    [LibraryImport(Library, EntryPoint = "pmemobj_close")]
    public static partial void Close(nint pool);

    [LibraryImport(Library, EntryPoint = "pmemobj_root")]
    public static partial PMEMoid Root(nint pool, nuint size);

    [LibraryImport(Library, EntryPoint = "pmemobj_direct")]
    public static partial nint Direct(PMEMoid oid);

    [LibraryImport(Library, EntryPoint = "pmemobj_errormsg")]
    public static partial nint ErrorMessage();

    // int pmemobj_tx_begin(PMEMobjpool *pop, jmp_buf env, ...): no jmp_buf (errors are returned), then TX_PARAM_NONE.
    [LibraryImport(Library, EntryPoint = "pmemobj_tx_begin")]
    public static partial int TxBegin(nint pool, nint env, int paramNone);

    [LibraryImport(Library, EntryPoint = "pmemobj_tx_add_range")]
    public static partial int TxAddRange(PMEMoid oid, ulong offset, nuint size);

    [LibraryImport(Library, EntryPoint = "pmemobj_tx_commit")]
    public static partial void TxCommit();

    [LibraryImport(Library, EntryPoint = "pmemobj_tx_end")]
    public static partial int TxEnd();
}

internal static partial class LibC
{
    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int SetEnv(string name, string value, int overwrite);
}
