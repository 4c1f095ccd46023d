using System.Text.Json;
using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Persistence;

namespace DirectPmem.IntegrationTests;

/// <summary>
/// DirectPmem against the kernel's own device-DAX driver: discovery, mapping, refusals and
/// persistence on a real /dev/daxX.Y. These tests write to the device, only above the label area
/// (the range-allocation tests own the start of the device) and in the top half.
/// </summary>
[Collection(DeviceTestGroup.Name)]
public sealed class DeviceDaxTests(ITestOutputHelper output)
{
    private const long TwoMiB = 2L << 20;

    [Fact]
    public void Discovery_finds_the_device_with_the_size_and_align_that_sysfs_and_daxctl_report_and_its_region()
    {
        string path = IntegrationEnvironment.RequireDevice();
        string name = Path.GetFileName(path);
        string sysfs = IntegrationEnvironment.SysfsDirectory(path);
        long sysfsSize = IntegrationEnvironment.ReadSysfsNumber(Path.Combine(sysfs, "size"));
        long sysfsAlign = IntegrationEnvironment.ReadSysfsNumber(Path.Combine(sysfs, "align"));
        string daxctl = IntegrationEnvironment.RunTool("daxctl", "list", "-R", "-D");
        output.WriteLine($"daxctl list -R -D: {daxctl.ReplaceLineEndings(" ")}");

        // daxctl: [{"id":N,"size":...,"align":...,"devices":[{"chardev":"dax0.0","size":...,"align":...,"mode":"devdax"}]}]
        using JsonDocument doc = JsonDocument.Parse(daxctl);
        (int RegionId, JsonElement Device)? fromDaxctl = null;
        foreach (JsonElement region in doc.RootElement.EnumerateArray())
        {
            foreach (JsonElement dev in region.GetProperty("devices").EnumerateArray())
            {
                if (dev.GetProperty("chardev").GetString() == name)
                {
                    fromDaxctl = (region.GetProperty("id").GetInt32(), dev.Clone());
                }
            }
        }
        Assert.True(fromDaxctl.HasValue, $"daxctl does not list {name}");
        (int daxctlRegionId, JsonElement daxctlDevice) = fromDaxctl.Value;

        IReadOnlyList<DaxDevice> devices = DaxBus.Default.GetDevices();
        output.WriteLine("DaxBus.Default.GetDevices(): " + string.Join("; ", devices));
        DaxDevice found = Assert.Single(devices, d => d.Name == name);
        Assert.Equal(path, found.DevicePath);
        Assert.False(found.IsEmulated);
        Assert.Equal(MappingBacking.DeviceDax, found.Backing);
        Assert.Equal(sysfsSize, found.Size);
        Assert.Equal(daxctlDevice.GetProperty("size").GetInt64(), found.Size);
        Assert.Equal(sysfsAlign, (long)found.Align);
        Assert.Equal(daxctlDevice.GetProperty("align").GetInt64(), (long)found.Align);
        Assert.Equal(PageSize.Pmd, found.Align);
        Assert.Equal(daxctlDevice.GetProperty("mode").GetString(), found.Mode);

        Assert.NotNull(found.Region);
        output.WriteLine($"region: {found.Region}");
        Assert.Equal(daxctlRegionId, found.Region.Id);
        Assert.True(found.Region.Size >= found.Size, $"region {found.Region.Name} ({found.Region.Size} bytes) is smaller than {name}");

        // Opening by path finds the same device, identified through /sys/dev/char.
        using DaxDevice opened = DaxDevice.Open(path);
        Assert.Equal((found.Name, found.Size, found.Align, found.Region.Name), (opened.Name, opened.Size, opened.Align, opened.Region?.Name));

        // dpmem's listing (the daxctl-shaped JSON lives in the tool) has the shape and the numbers of daxctl's.
        string listing = RunDpmem("list", "--json");
        output.WriteLine($"dpmem list --json: {listing.ReplaceLineEndings(" ")}");
        using JsonDocument ours = JsonDocument.Parse(listing);
        JsonElement entry = ours.RootElement.EnumerateArray().Single(e => e.GetProperty("chardev").GetString() == name);
        foreach (string property in new[] { "chardev", "size", "align", "mode" })
        {
            Assert.Equal(daxctlDevice.GetProperty(property).ToString(), entry.GetProperty(property).ToString());
        }
    }

    [Fact]
    public void A_whole_device_and_an_aligned_sub_range_map_at_2MiB_aligned_addresses_and_share_their_bytes()
    {
        using DaxDevice device = DaxDevice.Open(IntegrationEnvironment.RequireDevice());
        long subOffset = RangeValidator.AlignDown(device.Size / 2, TwoMiB) + TwoMiB;
        byte[] pattern = FileSystemDaxTests.Pattern(8192, seed: 11);

        // Raw: the device may hold the label table of RangeAllocationTests, which Map keeps out of.
        using DaxMapping whole = device.MapRaw();
        output.WriteLine($"whole device: {whole.Length} bytes at 0x{whole.AddressOf():x}, {whole.PageSize.ToDisplayString()}, {whole.Granularity}");
        Assert.Equal(device.Size, whole.Length);
        Assert.Equal(0, whole.AddressOf() % TwoMiB);
        Assert.Equal(MappingBacking.DeviceDax, whole.Backing);

        using DaxMapping sub = device.Map(new DaxMappingOptions { Offset = subOffset, Length = 2 * TwoMiB });
        output.WriteLine($"sub-range [0x{subOffset:x}, +4 MiB): at 0x{sub.AddressOf():x}, SourceOffset 0x{sub.SourceOffset:x}");
        Assert.Equal(0, sub.AddressOf() % TwoMiB);
        Assert.Equal(subOffset, sub.SourceOffset);
        Assert.Equal(2 * TwoMiB, sub.Length);

        // Written through the whole-device mapping, read through the sub-range, and back.
        pattern.CopyTo(whole.GetSpan(subOffset + TwoMiB - 4096, pattern.Length));
        whole.Persist(subOffset + TwoMiB - 4096, pattern.Length);
        Assert.Equal(pattern, sub.GetReadOnlySpan(TwoMiB - 4096, pattern.Length).ToArray());
        sub.GetRef<long>(0) = 0x0DDBA11;
        sub.Persist(0, sizeof(long));
        Assert.Equal(0x0DDBA11, whole.GetReadOnlyRef<long>(subOffset));

        // A third mapping, made after the writes, sees them too.
        using (DaxMapping again = device.Map(new DaxMappingOptions { Offset = subOffset, Length = TwoMiB * 2, ReadOnly = true }))
        {
            Assert.Equal(pattern, again.GetReadOnlySpan(TwoMiB - 4096, pattern.Length).ToArray());
        }

        // smaps: the kernel faults the device in 2 MiB pages, and no fork inherits it.
        PageSizeObservation seen = sub.ObservePageSize();
        output.WriteLine($"smaps: KernelPageSize={seen.KernelPageSize} MMUPageSize={seen.MmuPageSize} Size={seen.Size} DontFork={seen.DontFork} VmFlags='{seen.VmFlags}'");
        Assert.Equal(TwoMiB, seen.KernelPageSize);
        Assert.Equal(PageSize.Pmd, seen.ObservedPageSize);
        Assert.True(seen.DontFork, $"VmFlags '{seen.VmFlags}' lack dc (MADV_DONTFORK)");
        Assert.Equal(TwoMiB, whole.ObservePageSize().KernelPageSize);
    }

    [Fact]
    public void Everything_the_driver_would_refuse_is_refused_before_mmap_with_a_typed_error()
    {
        using DaxDevice device = DaxDevice.Open(IntegrationEnvironment.RequireDevice());
        long size = device.Size;

        ArgumentException offset = Assert.Throws<ArgumentException>(() => device.Map(new DaxMappingOptions { Offset = 4096, Length = TwoMiB }));
        output.WriteLine($"offset 4 KiB: {offset.GetType().Name}: {offset.Message}");
        Assert.Contains("2 MiB", offset.Message, StringComparison.Ordinal);
        Assert.Equal("Offset", offset.ParamName);

        ArgumentException length = Assert.Throws<ArgumentException>(() => device.Map(new DaxMappingOptions { Offset = 0, Length = TwoMiB + 4096 }));
        output.WriteLine($"length 2 MiB + 4 KiB: {length.GetType().Name}: {length.Message}");
        Assert.Contains("2 MiB", length.Message, StringComparison.Ordinal);
        Assert.Equal("Length", length.ParamName);

        ArgumentException pageSize = Assert.Throws<ArgumentException>(() => device.Map(new DaxMappingOptions { Length = TwoMiB, PageSize = PageSize.Pte }));
        output.WriteLine($"4 KiB pages: {pageSize.GetType().Name}: {pageSize.Message}");

        // Past the end the driver would map and then SIGBUS on touch: the library refuses first.
        ArgumentOutOfRangeException past = Assert.Throws<ArgumentOutOfRangeException>(() => device.Map(new DaxMappingOptions { Offset = size - TwoMiB, Length = 2 * TwoMiB }));
        output.WriteLine($"past the end: {past.GetType().Name}: {past.Message}");
        Assert.Contains("SIGBUS", past.Message, StringComparison.Ordinal);
        ArgumentOutOfRangeException beyond = Assert.Throws<ArgumentOutOfRangeException>(() => device.Map(new DaxMappingOptions { Offset = size, Length = TwoMiB }));
        output.WriteLine($"at the end: {beyond.GetType().Name}: {beyond.Message}");

        // A mapping's own bounds are checked too: nothing reads past its length.
        using DaxMapping last = device.Map(new DaxMappingOptions { Offset = size - TwoMiB, Length = TwoMiB, ReadOnly = true });
        Assert.Throws<ArgumentOutOfRangeException>(() => last.GetReadOnlySpan(TwoMiB - 8, 16).Length);
    }

    [Fact]
    public void A_refusal_by_the_kernel_itself_is_a_PmemException_that_names_mmap_and_EINVAL()
    {
        string path = IntegrationEnvironment.RequireDevice();
        string name = Path.GetFileName(path);
        string sysfs = IntegrationEnvironment.SysfsDirectory(path);
        // A sysfs tree that lies: the real device's numbers, but align 4 KiB. DirectPmem then allows
        // a 4 KiB-aligned offset, and only the kernel (which faults in 2 MiB) can refuse it.
        string root = Path.Combine(Path.GetTempPath(), $"fake-sysfs-{Environment.ProcessId}-{Guid.NewGuid():N}");
        string fakeDevice = Path.Combine(root, "bus", "dax", "devices", name);
        Directory.CreateDirectory(fakeDevice);
        try
        {
            File.Copy(Path.Combine(sysfs, "size"), Path.Combine(fakeDevice, "size"));
            File.Copy(Path.Combine(sysfs, "dev"), Path.Combine(fakeDevice, "dev"));
            File.WriteAllText(Path.Combine(fakeDevice, "align"), "4096\n");
            DaxDevice liar = new DaxBus(root, Path.GetDirectoryName(path)!).GetDevice(name);
            Assert.Equal(PageSize.Pte, liar.Align);

            PmemException refused = Assert.ThrowsAny<PmemException>(() => liar.Map(new DaxMappingOptions { Offset = 4096, Length = TwoMiB }).Dispose());
            output.WriteLine($"kernel refusal: {refused.GetType().Name}: {refused.Message} (Call={refused.Call}, Errno={refused.Errno}, ErrnoName={refused.ErrnoName})");
            Assert.Equal(NativeCalls.InvalidArgument, refused.Errno);
            Assert.Equal("EINVAL", refused.ErrnoName);
            Assert.StartsWith("mmap", refused.Call, StringComparison.Ordinal);
            Assert.Contains("EINVAL", refused.Message, StringComparison.Ordinal);
            Assert.Contains(path, refused.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void Persist_on_device_dax_flushes_cache_lines_and_never_calls_msync_which_the_driver_refuses()
    {
        using DaxDevice device = DaxDevice.Open(IntegrationEnvironment.RequireDevice());
        long offset = RangeValidator.AlignDown(device.Size * 3 / 4, TwoMiB);
        using DaxMapping map = device.Map(new DaxMappingOptions { Offset = offset, Length = TwoMiB });
        output.WriteLine($"device {device.Name}: persistence domain {device.Persistence}, mapping granularity {map.Granularity}");
        Assert.True(map.Granularity is PersistGranularity.CacheLine or PersistGranularity.Byte,
            $"device-DAX must persist by cache flush or fence, not {map.Granularity}");

        // The driver refuses msync(MS_SYNC) on device-DAX...
        int rc = NativeCalls.MSync(map.AddressOf(), (nuint)TwoMiB, NativeCalls.MsSync);
        int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
        output.WriteLine($"msync(MS_SYNC) on the mapping: rc={rc} errno={errno}");
        Assert.Equal(-1, rc);
        Assert.Equal(NativeCalls.InvalidArgument, errno);

        // ...so a Persist, Flush + Drain or durable copy that succeeds did not msync.
        byte[] data = FileSystemDaxTests.Pattern(1000, seed: 5);
        data.CopyTo(map.GetSpan(100, data.Length));
        map.Persist(100, data.Length);
        map.GetSpan(5000, 64).Fill(0xC3);
        map.Flush(5000, 64);
        map.Drain();
        map.Write(data, 70_000);
        Assert.Equal(data, map.GetReadOnlySpan(100, data.Length).ToArray());
        Assert.Equal(data, map.GetReadOnlySpan(70_000, data.Length).ToArray());
        Assert.Equal(0xC3, map.GetReadOnlySpan(5063, 1)[0]);
    }

    // The dpmem tool, run by the same dotnet host as these tests.
    private static string RunDpmem(params string[] arguments)
    {
        (int code, string stdout, string stderr) = IntegrationEnvironment.RunDpmem(arguments);
        Assert.True(code == 0, $"dpmem.dll {string.Join(' ', arguments)} exited with {code}; stderr: {stderr}; stdout: {stdout}");
        return stdout;
    }
}
