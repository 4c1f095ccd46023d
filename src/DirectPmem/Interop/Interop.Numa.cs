using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

// mbind(2) and move_pages(2) have no glibc wrappers (libnuma has them); they are called through
// syscall(3). syscall is variadic, but glibc's x86-64 implementation reads integer registers only,
// so a fixed-argument import is sound there.
internal static unsafe partial class Libc
{
    internal const long SYS_mbind = 237;          // x86-64 (aarch64: 235)
    internal const long SYS_move_pages = 279;     // x86-64 (aarch64: 239)

    // <linux/mempolicy.h> modes
    internal const int MPOL_BIND = 2;
    internal const int MPOL_PREFERRED_MANY = 5;   // Linux 5.15+

    // mbind flags
    internal const uint MPOL_MF_STRICT = 1 << 0;
    internal const uint MPOL_MF_MOVE = 1 << 1;

    [LibraryImport(LibraryName, EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall6(long number, nint a1, nint a2, nint a3, nint a4, nint a5, nint a6);

    /// <summary>mbind(addr, len, mode, nodemask, maxnode, flags).</summary>
    internal static int MBind(nint address, nuint length, int mode, ulong* nodeMask, nuint maxNode, uint flags)
        => (int)Syscall6(SYS_mbind, address, (nint)length, mode, (nint)nodeMask, (nint)maxNode, (nint)flags);

    /// <summary>move_pages(pid, count, pages, nodes, status, flags); with <paramref name="nodes"/> null it only reports where each page is.</summary>
    internal static int MovePages(int pid, nuint count, nint* pages, int* nodes, int* status, int flags)
        => (int)Syscall6(SYS_move_pages, pid, (nint)count, (nint)pages, (nint)nodes, (nint)status, flags);
}
