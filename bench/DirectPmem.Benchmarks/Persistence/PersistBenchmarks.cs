using BenchmarkDotNet.Attributes;
using DirectPmem.Mapping;

namespace DirectPmem.Benchmarks.Persistence;

/// <summary>Store 8 bytes and persist them: DirectPmem vs libpmem's pmem_persist, on the same mapping.</summary>
[Config(typeof(PersistenceBenchmarkConfig))]
[RequiresLibPmemForBaseline]
public unsafe class PersistBenchmarks : IDisposable
{
    private const long Offset = 4096 + 64;
    private ForcedMapping _forced = null!;
    private DaxMapping _mapping = null!;
    private byte* _address;
    private ulong _value;

    [GlobalSetup]
    public void Setup()
    {
        _forced = new ForcedMapping();
        _mapping = _forced.Mapping;
        _address = _mapping.DangerousGetPointer() + Offset;
    }

    [GlobalCleanup]
    public void Dispose()
    {
        _forced?.Dispose();
        GC.SuppressFinalize(this);
    }

    [Benchmark(Baseline = true, Description = "pmem_persist (8 B)")]
    public void LibPmemPersist8()
    {
        *(ulong*)_address = ++_value;
        LibPmem.Persist(_address, 8);
    }

    [Benchmark(Description = "DaxMapping.Persist (8 B)")]
    public void DirectPmemPersist8()
    {
        *(ulong*)_address = ++_value;
        _mapping.Persist(Offset, 8);
    }

    [Benchmark(Description = "DaxMapping.Publish (8 B)")]
    public void DirectPmemPublish8() => _mapping.Publish(Offset, ++_value);
}
