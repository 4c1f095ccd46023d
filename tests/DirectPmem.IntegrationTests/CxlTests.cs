using DirectPmem.Driver;
using DirectPmem.Mapping;
using DirectPmem.Persistence;
using DirectPmem.Placement;

namespace DirectPmem.IntegrationTests;

/// <summary>
/// Issue 20's CXL proof in the qemu guest booted by <c>tests/devdax-vm/run.sh --cxl</c>: a q35 machine
/// with one persistent CXL type-3 device, a pmem region made on it with <c>cxl create-region</c> and a
/// devdax namespace on the nd region the CXL nvdimm bridge makes of it. Discovery must call the device
/// CXL-backed (naming the CXL region), persistent, and the device must map, persist and read back.
/// </summary>
[Collection(DeviceTestGroup.Name)]
public sealed class CxlTests(ITestOutputHelper output)
{
    private const long TwoMiB = 2L << 20;

    /// <summary>The dax device on the CXL region (DIRECTPMEM_CXL_DEVICE) and the CXL region's name (DIRECTPMEM_CXL_REGION), or skips.</summary>
    private static (string Device, string Region) RequireCxlDevice()
    {
        string? device = Environment.GetEnvironmentVariable("DIRECTPMEM_CXL_DEVICE");
        string? region = Environment.GetEnvironmentVariable("DIRECTPMEM_CXL_REGION");
        if (string.IsNullOrEmpty(device) || string.IsNullOrEmpty(region))
        {
            Assert.Skip("no CXL guest: DIRECTPMEM_CXL_DEVICE and DIRECTPMEM_CXL_REGION are not set (run tests/devdax-vm/run.sh --cxl).");
        }
        if (!File.Exists(device))
        {
            Assert.Skip($"no CXL device: DIRECTPMEM_CXL_DEVICE names {device}, which does not exist (run tests/devdax-vm/run.sh --cxl).");
        }
        return (device, region);
    }

    [Fact]
    public void Discovery_reports_the_device_as_CXL_backed_by_its_pmem_region_and_persistent()
    {
        (string path, string regionName) = RequireCxlDevice();
        DaxTopology topology = DaxBus.Default.Scan();
        foreach (string error in topology.Errors.Select(e => e.Message))
        {
            output.WriteLine($"scan error: {error}");
        }
        DaxDevice device = Assert.Single(topology.Devices, d => d.DevicePath == path);
        output.WriteLine($"{device.Name}: {device.Source}, {device.MemoryPersistence}, mode {device.Mode}, target node {device.TargetNode}, region {device.Region?.Name} ({device.Region?.Source})");

        DaxMemorySource source = Assert.IsType<DaxMemorySource>(device.Source);
        Assert.Equal(DaxMemoryKind.Cxl, source.Kind);
        CxlRegion cxl = Assert.IsType<CxlRegion>(source.CxlRegion);
        Assert.Equal(regionName, cxl.Name);
        Assert.Equal(CxlRegionMode.Pmem, cxl.Mode);
        Assert.Equal("decoder0.0", cxl.RootDecoder);
        Assert.Equal(File.ReadAllText($"/sys/bus/cxl/devices/{regionName}/size").Trim(), $"0x{cxl.Size:x}");
        Assert.Equal(DaxMemoryPersistence.Persistent, device.MemoryPersistence);
        Assert.Equal(DaxDeviceMode.DeviceDax, device.DeviceMode);
        // The nd region the CXL nvdimm bridge made of it says the same.
        DaxRegion region = Assert.IsType<DaxRegion>(device.Region);
        Assert.Equal(DaxMemoryKind.Cxl, region.Source.Kind);
        Assert.Equal(regionName, region.Source.CxlRegion?.Name);
        Assert.Contains("nvdimm-bridge", region.ResolvedPath, StringComparison.Ordinal);
        // The sysfs facts daxctl reads: size and align.
        string sysfs = $"/sys/bus/dax/devices/{device.Name}";
        Assert.Equal(long.Parse(File.ReadAllText($"{sysfs}/size").Trim(), System.Globalization.CultureInfo.InvariantCulture), device.Size);
        Assert.Equal(DirectPmem.Geometry.PageSize.Pmd, device.Align);
    }

    [Fact]
    public void A_persistent_request_is_met_by_the_CXL_device()
    {
        (string path, _) = RequireCxlDevice();
        TierCandidate chosen = TierPlacement.Select(DaxBus.Default.Scan(), new TierRequest { Persistence = DaxMemoryPersistence.Persistent, MinimumBytes = TwoMiB });
        output.WriteLine($"chosen: {chosen}");
        Assert.Equal(path, chosen.Device.DevicePath);
        Assert.Equal(DaxMemoryKind.Cxl, chosen.Device.Source?.Kind);
    }

    [Fact]
    public void A_mapping_of_the_CXL_device_writes_persists_and_reads_back_through_a_new_mapping()
    {
        (string path, _) = RequireCxlDevice();
        byte[] record = new byte[4096];
        Random.Shared.NextBytes(record);
        using (DaxDevice device = DaxDevice.Open(path))
        {
            using DaxMapping mapping = device.MapRaw(new DaxMappingOptions { Offset = TwoMiB, Length = 2 * TwoMiB });
            Assert.Equal(MappingBacking.DeviceDax, mapping.Backing);
            Assert.Equal(PersistGranularity.CacheLine, mapping.Granularity);
            Assert.Equal(0, mapping.AddressOf() % TwoMiB);
            // Byte stores and loads first, then the library's copy across the 2 MiB page boundary.
            Span<byte> bytes = mapping.GetSpan(0, 256);
            for (int i = 0; i < bytes.Length; i++)
            {
                bytes[i] = (byte)i;
            }
            mapping.Persist(0, 256);
            // qemu 7.2's CXL memory window under TCG drops every store (tests/devdax-vm/README.md, "CXL"): the kernel's own
            // pmem driver writing through the same window reads back zeros and the backing file stays zero. That signature
            // (nothing but zeros where 1..255 were stored) is the emulator's; any other difference fails below.
            Assert.SkipWhen(mapping.GetReadOnlySpan(0, 256).IndexOfAnyExcept((byte)0) < 0,
                "qemu 7.2 dropped the stores to its CXL memory window: 256 bytes stored through the mapping of the CXL-backed device read back as zeros "
                + "(a known failure of this emulator; the kernel's pmem driver on the same region loses its writes the same way). The mapping itself was made: device-DAX, cache-line granularity, 2 MiB aligned.");
            AssertSame(Enumerable.Range(0, 256).Select(i => (byte)i).ToArray(), mapping.GetReadOnlySpan(0, 256), "byte stores, same mapping");
            mapping.Write(record, TwoMiB - 100);
            mapping.Persist(TwoMiB - 100, record.Length);
            AssertSame(record, mapping.GetReadOnlySpan(TwoMiB - 100, record.Length), "DaxMapping.Write, same mapping");
        }
        using DaxDevice again = DaxDevice.Open(path);
        using DaxMapping whole = again.MapRaw();
        Assert.Equal(again.Size, whole.Length);
        AssertSame(record, whole.GetReadOnlySpan(TwoMiB + TwoMiB - 100, record.Length), "a new mapping of the whole device");
    }

    // Compares byte by byte (scalar loads) and says where the first difference is, and whether a vectorised compare agrees.
    private void AssertSame(byte[] expected, ReadOnlySpan<byte> actual, string what)
    {
        int first = -1, count = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            if (actual[i] != expected[i])
            {
                count++;
                if (first < 0)
                {
                    first = i;
                }
            }
        }
        bool vector = actual.SequenceEqual(expected);
        output.WriteLine($"{what}: {count} of {expected.Length} bytes differ by scalar loads (first at {first}); SequenceEqual says {vector}");
        if (first >= 0)
        {
            int from = Math.Max(0, first - 8);
            int length = Math.Min(32, expected.Length - from);
            Assert.Fail($"{what}: {count} bytes differ, the first at {first}: expected {Convert.ToHexString(expected, from, length)}, read {Convert.ToHexString(actual.Slice(from, length))} (from {from})");
        }
        Assert.True(vector, $"{what}: scalar loads read every byte back but SequenceEqual (vector loads) says they differ");
    }
}
