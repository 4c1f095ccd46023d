using System.IO.MemoryMappedFiles;
using System.Text.Json;

namespace DirectPmem.IntegrationTests;

/// <summary>
/// What the kernel's device-DAX driver itself reports and refuses, independent of DirectPmem:
/// the facts the library is built on, checked on every run so a kernel change shows up here.
/// </summary>
[Collection(DeviceTestGroup.Name)]
public sealed class KernelDriverFactsTests(ITestOutputHelper output)
{
    [Fact]
    public void Sysfs_and_daxctl_agree_on_the_size_and_align_of_the_device()
    {
        string device = IntegrationEnvironment.RequireDevice();
        string sysfs = IntegrationEnvironment.SysfsDirectory(device);
        long size = IntegrationEnvironment.ReadSysfsNumber(Path.Combine(sysfs, "size"));
        long align = IntegrationEnvironment.ReadSysfsNumber(Path.Combine(sysfs, "align"));
        string json = IntegrationEnvironment.RunTool("daxctl", "list", "-d", Path.GetFileName(device));
        output.WriteLine($"sysfs {sysfs}: size={size} align={align}; daxctl list: {json.Trim()}");

        using JsonDocument doc = JsonDocument.Parse(json);
        JsonElement entry = doc.RootElement.ValueKind == JsonValueKind.Array ? doc.RootElement[0] : doc.RootElement;
        Assert.Equal(Path.GetFileName(device), entry.GetProperty("chardev").GetString());
        Assert.Equal(size, entry.GetProperty("size").GetInt64());
        Assert.Equal(align, entry.GetProperty("align").GetInt64());
        Assert.Equal(2L << 20, align);
        Assert.True(size > 0 && size % align == 0, $"size {size} is not a positive multiple of align {align}");
    }

    [Fact]
    public void Stat_reports_size_zero_for_the_device_so_only_sysfs_gives_its_size()
    {
        string device = IntegrationEnvironment.RequireDevice();
        long statSize = new FileInfo(device).Length;
        long sysfsSize = IntegrationEnvironment.ReadSysfsNumber(Path.Combine(IntegrationEnvironment.SysfsDirectory(device), "size"));
        output.WriteLine($"{device}: stat size={statSize}, sysfs size={sysfsSize}");
        // A mapping sized from stat (as the BCL's capacity 0 does) would be empty.
        Assert.Equal(0, statSize);
        Assert.True(sysfsSize > 0, $"sysfs size of {device} is {sysfsSize}");
    }

    [Fact]
    public void Dotnet_memory_mapped_view_Flush_throws_on_device_dax_because_the_driver_refuses_msync()
    {
        string device = IntegrationEnvironment.RequireDevice();
        long size = IntegrationEnvironment.ReadSysfsNumber(Path.Combine(IntegrationEnvironment.SysfsDirectory(device), "size"));
        // Near the end of the device: the start holds the range allocator's labels.
        const long viewLength = 2L << 20;
        long viewOffset = size - 4 * viewLength;
        using var mmf = MemoryMappedFile.CreateFromFile(device, FileMode.Open, mapName: null, size, MemoryMappedFileAccess.ReadWrite);
        MemoryMappedViewAccessor view = mmf.CreateViewAccessor(viewOffset, viewLength);
        view.Write(64, 0x1234_5678_9ABC_DEF0L);
        Assert.Equal(0x1234_5678_9ABC_DEF0L, view.ReadInt64(64));

        // The BCL flushes with msync(MS_SYNC | MS_INVALIDATE), which device-DAX answers with EINVAL;
        // DirectPmem therefore persists device-DAX with cache flushes and a fence, never msync.
        IOException flush = Assert.Throws<IOException>(view.Flush);
        output.WriteLine($"MemoryMappedViewAccessor.Flush on {device}: {flush.GetType().Name}: {flush.Message}");
        Assert.Contains("Invalid argument", flush.Message, StringComparison.Ordinal);
        // Dispose flushes too, and throws the same way.
        IOException dispose = Assert.Throws<IOException>(view.Dispose);
        output.WriteLine($"MemoryMappedViewAccessor.Dispose on {device}: {dispose.Message}");
    }
}

/// <summary>The tests that map the device run one at a time: they share its bytes.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DeviceTestGroup
{
    /// <summary>The collection's name.</summary>
    public const string Name = "device-DAX device";
}
