using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using BenchmarkDotNet.Attributes;
using DirectPmem.Mapping;

namespace DirectPmem.Benchmarks.Mapping;

/// <summary>
/// Random 8-byte reads and writes over a 2 GiB file, far larger than the caches (and the TLB
/// reach of 4 KiB pages), through DirectPmem's GetRef/GetSpan, System.IO.MemoryMappedFiles'
/// view accessor, and a raw pointer into the same mapping (the floor: no bounds check at all).
/// </summary>
/// <remarks>
/// Every benchmark draws its offsets from the same generator (an LCG over the whole file, not a
/// small table of offsets that would fit in L2), continuing from invocation to invocation. The
/// file lives on tmpfs (/dev/shm) so that no writeback runs during the measurement and no write
/// fault re-dirties a cleaned page; every page is written once in the setup.
/// </remarks>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkDotNet.Configs.BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class RandomAccessBenchmarks : IDisposable
{
    private const long FileSize = 2L << 30;
    private const int Accesses = 1 << 16;
    private const string Directory = "/dev/shm";

    private string _path = "";
    private PmemFile? _file;
    private DaxMapping? _map;
    private FileStream? _stream;
    private MemoryMappedFile? _mmf;
    private MemoryMappedViewAccessor? _accessor;
    private ulong _state = 42;

    [GlobalSetup]
    public void Setup()
    {
        if (!System.IO.Directory.Exists(Directory))
        {
            throw new InvalidOperationException($"{Directory} (tmpfs) is missing: the benchmark keeps its file off disk-backed storage.");
        }
        _path = Path.Combine(Directory, $"directpmem-bench-{Environment.ProcessId}.pmem");
        // Both sides open the file with a shared lock (FileShare.ReadWrite takes LOCK_SH in .NET).
        _file = PmemFile.Create(_path, FileSize, shared: true);
        _map = _file.Map(new DaxMappingOptions { Populate = true });
        _stream = new FileStream(_path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        _mmf = MemoryMappedFile.CreateFromFile(_stream, null, 0, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: true);
        _accessor = _mmf.CreateViewAccessor(0, FileSize);
        // Write every page through both views, so neither side pays a first-touch or write fault.
        for (long offset = 0; offset < FileSize; offset += 4096)
        {
            _accessor.Write(offset, 0L);
            _map.GetRef<long>(offset) = 0;
        }
    }

    public void Dispose()
    {
        Cleanup();
        GC.SuppressFinalize(this);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _accessor?.Dispose();
        _mmf?.Dispose();
        _stream?.Dispose();
        _map?.Dispose();
        _file?.Dispose();
        _accessor = null;
        _mmf = null;
        _stream = null;
        _map = null;
        _file = null;
        if (_path.Length > 0)
        {
            File.Delete(_path);
        }
    }

    // An LCG (Knuth's MMIX constants); the high bits pick an 8-byte-aligned offset anywhere in the file.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long Next(ref ulong state)
    {
        state = state * 6364136223846793005UL + 1442695040888963407UL;
        return (long)(state >> 33) & (FileSize - 8) & ~7L;
    }

    [Benchmark(OperationsPerInvoke = Accesses)]
    [BenchmarkCategory("read")]
    public unsafe long ReadRawPointer()
    {
        byte* p = _map!.DangerousGetPointer();
        ulong state = _state;
        long sum = 0;
        for (int i = 0; i < Accesses; i++)
        {
            sum += *(long*)(p + Next(ref state));
        }
        _state = state;
        return sum;
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Accesses)]
    [BenchmarkCategory("read")]
    public long ReadViewAccessor()
    {
        MemoryMappedViewAccessor accessor = _accessor!;
        ulong state = _state;
        long sum = 0;
        for (int i = 0; i < Accesses; i++)
        {
            sum += accessor.ReadInt64(Next(ref state));
        }
        _state = state;
        return sum;
    }

    [Benchmark(OperationsPerInvoke = Accesses)]
    [BenchmarkCategory("read")]
    public long ReadGetRef()
    {
        DaxMapping map = _map!;
        ulong state = _state;
        long sum = 0;
        for (int i = 0; i < Accesses; i++)
        {
            sum += map.GetReadOnlyRef<long>(Next(ref state));
        }
        _state = state;
        return sum;
    }

    [Benchmark(OperationsPerInvoke = Accesses)]
    [BenchmarkCategory("read")]
    public long ReadGetSpan()
    {
        DaxMapping map = _map!;
        ulong state = _state;
        long sum = 0;
        for (int i = 0; i < Accesses; i++)
        {
            sum += BinaryPrimitives.ReadInt64LittleEndian(map.GetReadOnlySpan(Next(ref state), sizeof(long)));
        }
        _state = state;
        return sum;
    }

    [Benchmark(OperationsPerInvoke = Accesses)]
    [BenchmarkCategory("write")]
    public unsafe void WriteRawPointer()
    {
        byte* p = _map!.DangerousGetPointer();
        ulong state = _state;
        for (int i = 0; i < Accesses; i++)
        {
            *(long*)(p + Next(ref state)) = i;
        }
        _state = state;
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Accesses)]
    [BenchmarkCategory("write")]
    public void WriteViewAccessor()
    {
        MemoryMappedViewAccessor accessor = _accessor!;
        ulong state = _state;
        for (int i = 0; i < Accesses; i++)
        {
            accessor.Write(Next(ref state), (long)i);
        }
        _state = state;
    }

    [Benchmark(OperationsPerInvoke = Accesses)]
    [BenchmarkCategory("write")]
    public void WriteGetRef()
    {
        DaxMapping map = _map!;
        ulong state = _state;
        for (int i = 0; i < Accesses; i++)
        {
            map.GetRef<long>(Next(ref state)) = i;
        }
        _state = state;
    }

    [Benchmark(OperationsPerInvoke = Accesses)]
    [BenchmarkCategory("write")]
    public void WriteGetSpan()
    {
        DaxMapping map = _map!;
        ulong state = _state;
        for (int i = 0; i < Accesses; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(map.GetSpan(Next(ref state), sizeof(long)), i);
        }
        _state = state;
    }
}
