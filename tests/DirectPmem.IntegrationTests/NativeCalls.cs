using System.Runtime.InteropServices;

namespace DirectPmem.IntegrationTests;

/// <summary>System calls the tests make themselves, to show what the kernel does where DirectPmem deliberately does not call it.</summary>
internal static partial class NativeCalls
{
    /// <summary>msync's MS_SYNC flag.</summary>
    public const int MsSync = 4;

    /// <summary>EINVAL.</summary>
    public const int InvalidArgument = 22;

    /// <summary>msync(2).</summary>
    [LibraryImport("libc.so.6", EntryPoint = "msync", SetLastError = true)]
    public static partial int MSync(nint address, nuint length, int flags);
}
