using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static unsafe partial class Libc
{
    /// <summary>getcpu(3) (glibc 2.29+): the CPU and NUMA node the calling thread runs on now.</summary>
    [LibraryImport(LibraryName, EntryPoint = "getcpu", SetLastError = true)]
    internal static partial int GetCpu(uint* cpu, uint* node);
}
