using DirectPmem.Driver;
using DirectPmem.Mapping;
using DirectPmem.Persistence;
using DirectPmem.Tool.Cli;

namespace DirectPmem.Tool.Bench;

/// <summary>
/// The mapping a benchmark writes to: a device-DAX device, a file (a DAX file, an ordinary file,
/// an emulated device's file) or, without a path, a memfd. Where the mapping has no cache-line
/// granularity (no persistent memory) it is mapped in forced cache-line mode and says so.
/// </summary>
internal sealed class BenchTarget : IDisposable
{
    private readonly IDisposable? _owner;

    private BenchTarget(DaxMapping map, IDisposable? owner, string kind, string path, bool forced, string description)
    {
        Map = map;
        _owner = owner;
        Kind = kind;
        Path = path;
        ForcedCacheLine = forced;
        Description = description;
    }

    internal DaxMapping Map { get; }

    internal string Kind { get; }

    internal string Path { get; }

    internal bool ForcedCacheLine { get; }

    internal string Description { get; }

    /// <summary>Touches every page once, so that no timed round pays a page fault (MAP_POPULATE is a hint some backings ignore).</summary>
    internal unsafe void Prefault()
    {
        byte* p = Map.DangerousGetPointer();
        for (long offset = 0; offset < Map.Length; offset += 4096)
        {
            p[offset] = 0;
        }
    }

    internal static BenchTarget Open(string? path, string sysfsRoot, long wanted)
    {
        if (path is null)
        {
            PmemFile memory = PmemFile.CreateMemory("dpmem-bench", wanted);
            try
            {
                DaxMapping map = memory.Map(new DaxMappingOptions { ForceCacheLineGranularity = true, Populate = true });
                return new BenchTarget(map, memory, "memfd", "memfd:dpmem-bench", true,
                    "no device given: shared memory (memfd) in forced cache-line mode; the flush instructions run, nothing is durable");
            }
            catch
            {
                memory.Dispose();
                throw;
            }
        }
        if (DeviceOpener.IsCharDevice(path, sysfsRoot, out DaxDevice? device))
        {
            try
            {
                long length = Math.Min(Floor(device!.Size, (long)device.Align), Ceiling(wanted, (long)device.Align));
                DaxMapping map = device.Map(new DaxMappingOptions { Length = length, Populate = true });
                return new BenchTarget(map, device, "device-dax", path, false, $"device-DAX {device.Name}, {map.Granularity} granularity ({Pmem.FlushInstruction})");
            }
            catch
            {
                device!.Dispose();
                throw;
            }
        }
        // A file: an emulated device keeps its descriptor after the data, which must not be written.
        DescriptorReport descriptor = DescriptorInspector.Read(path);
        bool emulated = descriptor.Problems.Count == 0 && descriptor.Size is > 0;
        PmemFile file = PmemFile.Open(path, writable: true);
        try
        {
            long usable = emulated ? descriptor.Size!.Value : file.Size;
            long page = (long)file.MinimumPageSize;
            long length = Math.Min(Floor(usable, page), Ceiling(wanted, page));
            if (length <= 0)
            {
                throw new ToolException($"'{path}' is too small to benchmark ({usable} bytes).");
            }
            DaxMapping map = file.Map(new DaxMappingOptions { Length = length, Populate = true });
            bool forced = false;
            if (map.Granularity is not (PersistGranularity.CacheLine or PersistGranularity.Byte))
            {
                string was = map.Granularity.ToString();
                map.Dispose();
                map = file.Map(new DaxMappingOptions { Length = length, Populate = true, ForceCacheLineGranularity = true });
                forced = true;
                return new BenchTarget(map, file, emulated ? "emulated" : "file", path, forced,
                    $"{(emulated ? "emulated device" : "file")} on {file.Backing} ({was} granularity: no persistent memory): forced cache-line mode; the flush instructions run, the data is not durable without msync");
            }
            return new BenchTarget(map, file, emulated ? "emulated" : "file", path, forced, $"{file.Backing} file, {map.Granularity} granularity ({Pmem.FlushInstruction})");
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        Map.Dispose();
        _owner?.Dispose();
    }

    private static long Floor(long value, long unit) => value / unit * unit;

    private static long Ceiling(long value, long unit) => (value + unit - 1) / unit * unit;
}
