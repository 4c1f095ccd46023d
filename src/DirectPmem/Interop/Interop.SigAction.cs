using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static unsafe partial class Libc
{
    // <signal.h>, x86-64 values.
    internal const int SIGBUS = 7;                      // differs on mips/sparc/alpha
    internal const int SIGSEGV = 11;

    // sa_flags
    internal const int SA_SIGINFO = 0x4;
    internal const int SA_RESTORER = 0x04000000;         // set by glibc itself; never by callers
    internal const int SA_ONSTACK = 0x08000000;
    internal const int SA_RESTART = 0x10000000;
    internal const int SA_NODEFER = 0x40000000;
    internal const int SA_RESETHAND = unchecked((int)0x80000000);

    // si_code of SIGBUS
    internal const int BUS_ADRALN = 1;
    internal const int BUS_ADRERR = 2;                   // access past the end of a mapped object (a truncated file)
    internal const int BUS_OBJERR = 3;
    internal const int BUS_MCEERR_AR = 4;                // hardware memory error consumed: action required
    internal const int BUS_MCEERR_AO = 5;                // hardware memory error found, not consumed: action optional

    // si_code of SIGSEGV
    internal const int SEGV_MAPERR = 1;                  // no mapping at the address
    internal const int SEGV_ACCERR = 2;                  // the mapping forbids the access (PROT_NONE)

    internal static readonly nint SIG_DFL = 0;
    internal static readonly nint SIG_IGN = 1;

    // The raw system call number of rt_sigaction on x86-64 (the generated signal handler calls it directly).
    internal const int SYS_rt_sigaction = 13;

    /// <summary>
    /// glibc's <c>struct sigaction</c> on x86-64 (checked against /usr/include and a C probe: size 152,
    /// sa_handler/sa_sigaction at 0, sa_mask (1024 bits) at 8, sa_flags at 136, sa_restorer at 144).
    /// This is the library's layout, not the kernel's (handler, flags, restorer, 8-byte mask): glibc
    /// converts it and supplies its own restorer.
    /// </summary>
    [StructLayout(LayoutKind.Sequential, Size = 152)]
    internal struct SigActionData
    {
        internal nint Handler;
        internal fixed ulong Mask[16];
        internal int Flags;
        private readonly int _padding;
        internal nint Restorer;
    }

    [LibraryImport(LibraryName, EntryPoint = "sigaction", SetLastError = true)]
    internal static partial int SigAction(int signum, SigActionData* act, SigActionData* oldact);
}
