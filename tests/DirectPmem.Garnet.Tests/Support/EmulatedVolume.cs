using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;

namespace DirectPmem.Garnet.Tests.Support;

/// <summary>
/// A <see cref="PmemVolume"/> on an emulated device-DAX device in a file, mapped in forced
/// cache-line mode (the pmem cost model; a process crash keeps the data because it is in the
/// page cache). Reopen it on the same file with <see cref="Open(string)"/>.
/// </summary>
public sealed class EmulatedVolume : IDisposable
{
    private readonly PmemFile _file;

    private EmulatedVolume(string path, PmemFile file, PmemVolume volume)
    {
        Path = path;
        _file = file;
        Volume = volume;
    }

    public string Path { get; }

    public PmemVolume Volume { get; }

    public static EmulatedVolume Create(string path, long size, PmemVolumeOptions? options = null)
    {
        using (DaxDevice.CreateEmulated(path, size, PageSize.Pte))
        {
        }
        // The test's directory may be on tmpfs (volatile memory): allowed here, refused by default (VolumeInPoolTests).
        return Map(path, size, m => PmemVolume.Create(m, (options ?? new PmemVolumeOptions()) with { AllowVolatile = true }));
    }

    public static EmulatedVolume Open(string path)
    {
        long size;
        using (DaxDevice device = DaxDevice.OpenEmulated(path))
            size = device.Size;
        return Map(path, size, m => PmemVolume.Open(m));
    }

    /// <summary>Maps the device's data (the file's first <paramref name="size"/> bytes) without opening a volume.</summary>
    public static (PmemFile File, DaxMapping Mapping) MapRaw(string path)
    {
        long size;
        using (DaxDevice device = DaxDevice.OpenEmulated(path))
            size = device.Size;
        PmemFile file = PmemFile.Open(path);
        return (file, file.Map(new DaxMappingOptions { Length = size, ForceCacheLineGranularity = true }));
    }

    private static EmulatedVolume Map(string path, long size, Func<DaxMapping, PmemVolume> open)
    {
        PmemFile file = PmemFile.Open(path);
        DaxMapping? mapping = null;
        try
        {
            mapping = file.Map(new DaxMappingOptions { Length = size, ForceCacheLineGranularity = true });
            return new EmulatedVolume(path, file, open(mapping));
        }
        catch
        {
            mapping?.Dispose();
            file.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        Volume.Dispose();
        _file.Dispose();
    }
}
