using BenchmarkDotNet.Attributes;
using DirectPmem.Mapping;

namespace DirectPmem.Benchmarks.Persistence;

/// <summary>
/// Copy and persist: DirectPmem's DaxMapping.Write vs libpmem's pmem_memcpy_persist, and vs a
/// plain Buffer.MemoryCopy (no flush, no fence) for the memory-bandwidth limit, on the same
/// mapping and the same 64-byte-aligned source and destination.
/// </summary>
[Config(typeof(PersistenceBenchmarkConfig))]
[RequiresLibPmemForBaseline]
public unsafe class CopyPersistBenchmarks : IDisposable
{
    private const long Destination = 4096;
    private ForcedMapping _forced = null!;
    private DaxMapping _mapping = null!;
    private byte[] _source = null!;
    private byte* _sourcePointer;
    private byte* _destinationPointer;

    [Params(64, 256, 4096, 65536, 1 << 20, 16 << 20)]
    public int Size { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _forced = new ForcedMapping();
        _mapping = _forced.Mapping;
        _source = GC.AllocateArray<byte>(Size + 64, pinned: true);
        new Random(42).NextBytes(_source);
        fixed (byte* s = _source)
        {
            // Pinned: the address stays valid. Align to 64 like the destination.
            _sourcePointer = (byte*)(((nuint)s + 63) & ~(nuint)63);
        }
        _destinationPointer = _mapping.DangerousGetPointer() + Destination;
    }

    [GlobalCleanup]
    public void Dispose()
    {
        _forced?.Dispose();
        GC.SuppressFinalize(this);
    }

    [Benchmark(Baseline = true, Description = "pmem_memcpy_persist")]
    public void LibPmemMemcpyPersist() => LibPmem.MemcpyPersist(_destinationPointer, _sourcePointer, (nuint)Size);

    [Benchmark(Description = "DaxMapping.Write")]
    public void DirectPmemWrite() => _mapping.Write(new ReadOnlySpan<byte>(_sourcePointer, Size), Destination);

    [Benchmark(Description = "Pmem.DangerousCopy")]
    public void DirectPmemDangerousCopy() => DirectPmem.Persistence.Pmem.DangerousCopy(_destinationPointer, _sourcePointer, (nuint)Size);

    [Benchmark(Description = "Buffer.MemoryCopy (no persist)")]
    public void BufferMemoryCopy() => Buffer.MemoryCopy(_sourcePointer, _destinationPointer, Size, Size);
}
