using DirectPmem.Mapping;
using DirectPmem.Storage;

namespace DirectPmem.TestSupport;

/// <summary>
/// Pool creation for tests: tests make pools wherever the machine puts scratch files and in simulated or anonymous
/// memory (/tmp is a tmpfs on many distributions), so they opt in to volatile backings
/// (<see cref="PoolCreateOptions.AllowVolatile"/>) in this one place. Tests of the refusal itself call
/// <see cref="PmemPool.Create"/> directly. Compiled into every test project that creates pools.
/// </summary>
internal static class TestPools
{
    /// <summary><paramref name="options"/> (or the defaults) with <see cref="PoolCreateOptions.AllowVolatile"/> set.</summary>
    public static PoolCreateOptions AllowVolatile(PoolCreateOptions? options = null)
        => (options ?? PoolCreateOptions.Default) with { AllowVolatile = true };

    /// <summary><see cref="PmemPool.Create"/> with the volatile opt-in.</summary>
    public static PmemPool Create(DaxMapping mapping, string layout, PoolCreateOptions? options = null, bool ownsMapping = false)
        => PmemPool.Create(mapping, layout, AllowVolatile(options), ownsMapping);

    /// <summary><see cref="PmemPool.CreateFile"/> with the volatile opt-in.</summary>
    public static PmemPool CreateFile(string path, long size, string layout, PoolCreateOptions? options = null, DaxMappingOptions? mappingOptions = null)
        => PmemPool.CreateFile(path, size, layout, AllowVolatile(options), mappingOptions);
}
