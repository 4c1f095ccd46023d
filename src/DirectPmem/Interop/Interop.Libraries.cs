namespace DirectPmem.Interop;

/// <summary>
/// Linux system calls used by DirectPmem, one file per call (the layout of dotnet/runtime's
/// <c>Common/src/Interop/Unix/System.Native</c>). Everything here is internal and blittable:
/// no marshalling on any path that runs per access.
/// </summary>
internal static unsafe partial class Libc
{
    /// <summary>glibc's soname on x86-64 Linux; resolves without libc6-dev's <c>libc.so</c> linker script.</summary>
    internal const string LibraryName = "libc.so.6";
}
