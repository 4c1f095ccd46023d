using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using BenchmarkDotNet.Attributes;
using DirectPmem.Mapping;

namespace DirectPmem.Benchmarks.Mapping;

/// <summary>
/// Random 8-byte reads and writes into one 256 MiB file, through DirectPmem's GetRef/GetSpan and
/// through System.IO.MemoryMappedFiles' view accessor, same file, same offsets, same run.
/// </summary>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkDotNet.Configs.BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class RandomAccessBenchmarks
{
    private const long FileSize = 256L * 1024 * 1024;
    private const int Accesses = 4096;

    private string _path = "";
    private PmemFile? _file;
    private DaxMapping? _map;
    private FileStream? _stream;
    private MemoryMappedFile? _mmf;
    private MemoryMappedViewAccessor? _accessor;
    private readonly long[] _offsets = new long[Accesses];

    [GlobalSetup]
    public void Setup()
    {
        _path = Path.Combine(Path.GetTempPath(), $"directpmem-bench-{Environment.ProcessId}.pmem");
        // Both sides open the file with a shared lock (FileShare.ReadWrite takes LOCK_SH in .NET).
        _file = PmemFile.Create(_path, FileSize, shared: true);
        _map = _file.Map(new DaxMappingOptions { Populate = true });
        _stream = new FileStream(_path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        _mmf = MemoryMappedFile.CreateFromFile(_stream, null, 0, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: true);
        _accessor = _mmf.CreateViewAccessor(0, FileSize);
        var random = new Random(42);
        for (int i = 0; i < Accesses; i++)
        {
            _offsets[i] = random.NextInt64(FileSize / 8) * 8;
        }
        // Touch every page through the accessor's view as well, so neither side pays first-touch faults.
        for (long offset = 0; offset < FileSize; offset += 4096)
        {
            _accessor.Write(offset, 0L);
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _accessor?.Dispose();
        _mmf?.Dispose();
        _stream?.Dispose();
        _map?.Dispose();
        _file?.Dispose();
        File.Delete(_path);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Accesses)]
    [BenchmarkCategory("read")]
    public long ReadViewAccessor()
    {
        long sum = 0;
        foreach (long offset in _offsets)
        {
            sum += _accessor!.ReadInt64(offset);
        }
        return sum;
    }

    [Benchmark(OperationsPerInvoke = Accesses)]
    [BenchmarkCategory("read")]
    public long ReadGetRef()
    {
        DaxMapping map = _map!;
        long sum = 0;
        foreach (long offset in _offsets)
        {
            sum += map.GetReadOnlyRef<long>(offset);
        }
        return sum;
    }

    [Benchmark(OperationsPerInvoke = Accesses)]
    [BenchmarkCategory("read")]
    public long ReadGetSpan()
    {
        DaxMapping map = _map!;
        long sum = 0;
        foreach (long offset in _offsets)
        {
            sum += BinaryPrimitives.ReadInt64LittleEndian(map.GetReadOnlySpan(offset, sizeof(long)));
        }
        return sum;
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Accesses)]
    [BenchmarkCategory("write")]
    public void WriteViewAccessor()
    {
        long i = 0;
        foreach (long offset in _offsets)
        {
            _accessor!.Write(offset, i++);
        }
    }

    [Benchmark(OperationsPerInvoke = Accesses)]
    [BenchmarkCategory("write")]
    public void WriteGetRef()
    {
        DaxMapping map = _map!;
        long i = 0;
        foreach (long offset in _offsets)
        {
            map.GetRef<long>(offset) = i++;
        }
    }

    [Benchmark(OperationsPerInvoke = Accesses)]
    [BenchmarkCategory("write")]
    public void WriteGetSpan()
    {
        DaxMapping map = _map!;
        long i = 0;
        foreach (long offset in _offsets)
        {
            BinaryPrimitives.WriteInt64LittleEndian(map.GetSpan(offset, sizeof(long)), i++);
        }
    }
}
