using BenchmarkDotNet.Attributes;
using DirectPmem.Mapping;

namespace DirectPmem.Benchmarks.Persistence;

/// <summary>
/// The same copies with the destination walking 1.5 GiB of the mapping, so that every destination
/// has left the caches before the walk returns to it: larger than any last-level cache seen on the
/// machines that run this (CPUID reports 508 MiB on the AMD EPYC VMs, lscpu up to 260 MiB on Xeons).
/// Cold by walking, not by explicit eviction. The plain Buffer.MemoryCopy baseline also has to reach
/// memory: the memory-bandwidth comparison.
/// </summary>
[Config(typeof(PersistenceBenchmarkConfig))]
[RequiresLibPmemForBaseline]
public unsafe class CopyColdDestinationBenchmarks : IDisposable
{
    private const long Window = 1536L << 20;
    private ForcedMapping _forced = null!;
    private DaxMapping _mapping = null!;
    private byte[] _source = null!;
    private byte* _sourcePointer;
    private byte* _base;
    private long _next;

    [Params(65536, 1 << 20)]
    public int Size { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _forced = new ForcedMapping(Window);
        _mapping = _forced.Mapping;
        _source = GC.AllocateArray<byte>(Size + 64, pinned: true);
        new Random(42).NextBytes(_source);
        fixed (byte* s = _source)
        {
            _sourcePointer = (byte*)(((nuint)s + 63) & ~(nuint)63);
        }
        _base = _mapping.DangerousGetPointer();
    }

    [GlobalCleanup]
    public void Dispose()
    {
        _forced?.Dispose();
        GC.SuppressFinalize(this);
    }

    private long NextDestination()
    {
        long offset = _next;
        _next = offset + Size >= Window ? 0 : offset + Size;
        return offset;
    }

    [Benchmark(Baseline = true, Description = "Buffer.MemoryCopy (no persist), cold")]
    public void BufferMemoryCopy() => Buffer.MemoryCopy(_sourcePointer, _base + NextDestination(), Size, Size);

    [Benchmark(Description = "DaxMapping.Write, cold")]
    public void DirectPmemWrite() => _mapping.Write(new ReadOnlySpan<byte>(_sourcePointer, Size), NextDestination());

    [Benchmark(Description = "pmem_memcpy_persist, cold")]
    public void LibPmemMemcpyPersist() => LibPmem.MemcpyPersist(_base + NextDestination(), _sourcePointer, (nuint)Size);
}
