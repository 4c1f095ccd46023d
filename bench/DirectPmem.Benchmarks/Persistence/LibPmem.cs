using System.Runtime.InteropServices;
using BenchmarkDotNet.Filters;
using BenchmarkDotNet.Running;

namespace DirectPmem.Benchmarks.Persistence;

/// <summary>PMDK's libpmem (PMDK 1.12, Debian package libpmem1), the baseline. Install it with bench/setup-pmdk.sh.</summary>
internal static unsafe partial class LibPmem
{
    private const string Library = "libpmem.so.1";

    /// <summary>Whether libpmem.so.1 can be loaded; benchmarks that call it are skipped otherwise.</summary>
    internal static readonly bool IsAvailable = Probe();

    private static bool Probe()
    {
        if (NativeLibrary.TryLoad(Library, out nint handle))
        {
            NativeLibrary.Free(handle);
            return true;
        }
        return false;
    }

    // pmem_persist always flushes (CLWB/CLFLUSHOPT/CLFLUSH + SFENCE): it does not check what the memory is.
    [LibraryImport(Library, EntryPoint = "pmem_persist")]
    internal static partial void Persist(void* address, nuint length);

    // The flushing variant of the copy: non-temporal stores from PMEM_MOVNT_THRESHOLD (256) up, then SFENCE.
    [LibraryImport(Library, EntryPoint = "pmem_memcpy_persist")]
    internal static partial void* MemcpyPersist(void* destination, void* source, nuint length);

    // The same calls without the GC transition (as C calls them): libpmem's persist and copy never
    // block, allocate or call back, so the strictest comparison leaves the transition out.
    [LibraryImport(Library, EntryPoint = "pmem_persist")]
    [SuppressGCTransition]
    internal static partial void PersistNoTransition(void* address, nuint length);

    [LibraryImport(Library, EntryPoint = "pmem_memcpy_persist")]
    [SuppressGCTransition]
    internal static partial void* MemcpyPersistNoTransition(void* destination, void* source, nuint length);
}

/// <summary>Drops the benchmarks whose name starts with "LibPmem" when libpmem.so.1 is missing, and says so.</summary>
[AttributeUsage(AttributeTargets.Class)]
internal sealed class RequiresLibPmemForBaselineAttribute : BenchmarkDotNet.Attributes.FilterConfigBaseAttribute
{
    private static int s_warned;

    public RequiresLibPmemForBaselineAttribute()
        : base(new SimpleFilter(Keep))
    {
    }

    private static bool Keep(BenchmarkCase benchmark)
    {
        if (LibPmem.IsAvailable || !benchmark.Descriptor.WorkloadMethod.Name.StartsWith("LibPmem", StringComparison.Ordinal))
        {
            return true;
        }
        if (Interlocked.Exchange(ref s_warned, 1) == 0)
        {
            Console.WriteLine("libpmem.so.1 is not installed: the PMDK baseline benchmarks are skipped (run bench/setup-pmdk.sh).");
        }
        return false;
    }
}
