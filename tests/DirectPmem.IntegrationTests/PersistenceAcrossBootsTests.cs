using System.Buffers.Binary;
using System.Text;
using DirectPmem.Driver;
using DirectPmem.Mapping;

namespace DirectPmem.IntegrationTests;

/// <summary>
/// The whole path as a smoke test: data written and persisted in the guest's first boot is read
/// back in its second boot of the same NVDIMM file (tests/devdax-vm/run.sh boots it twice, and
/// the second boot runs only this class). The data is derived from the run's random id, so
/// nothing left from another run can pass.
/// </summary>
[Collection(DeviceTestGroup.Name)]
public sealed class PersistenceAcrossBootsTests(ITestOutputHelper output)
{
    private const string FsDaxFileName = "across-boots.pmem";
    private const long FsDaxFileSize = 2L << 20;
    private const long FsDaxOffset = 12345;
    private const string RangeName = "across-boots";
    private const long DeviceOffset = 777_777;

    [Fact]
    public void First_boot_persists_a_record_in_an_fsdax_file()
    {
        (string dir, string runId) = Require(phase: 1);
        string path = Path.Combine(dir, FsDaxFileName);
        byte[] record = Record(runId, "fsdax");
        using PmemFile file = PmemFile.Create(path, FsDaxFileSize);
        Assert.Equal(MappingBacking.FsDaxFile, file.Backing);
        using DaxMapping map = file.Map();
        record.CopyTo(map.GetSpan(FsDaxOffset, record.Length));
        map.Persist(FsDaxOffset, record.Length);
        output.WriteLine($"boot 1: persisted {record.Length} bytes for run {runId} at offset {FsDaxOffset} of {path} ({map.Granularity})");
    }

    [Fact]
    public void Second_boot_reads_back_the_record_persisted_in_an_fsdax_file_in_the_first_boot()
    {
        (string dir, string runId) = Require(phase: 2);
        string path = Path.Combine(dir, FsDaxFileName);
        byte[] expected = Record(runId, "fsdax");
        using PmemFile file = PmemFile.Open(path, writable: false);
        Assert.Equal(MappingBacking.FsDaxFile, file.Backing);
        using DaxMapping map = file.Map(new DaxMappingOptions { ReadOnly = true });
        Assert.Equal(expected, map.GetReadOnlySpan(FsDaxOffset, expected.Length).ToArray());
        output.WriteLine($"boot 2: read back the {expected.Length} bytes of run {runId} from {path}");
    }

    [Fact]
    public void First_boot_persists_a_record_in_a_labelled_range_of_the_device()
    {
        string runId = RequirePhase(1);
        using DaxDevice device = DaxDevice.Open(IntegrationEnvironment.RequireDevice());
        using DaxRangeAllocator allocator = RangeAllocationTests.OpenOrFormat(device, output);
        if (allocator.Ranges.Any(r => r.Name == RangeName))
        {
            // Left by an earlier run on a device the tests may overwrite.
            output.WriteLine($"freeing the range '{RangeName}' left by an earlier run");
            allocator.Free(RangeName);
        }
        DaxAllocation range = allocator.Allocate(RangeName, 2L << 20);
        byte[] record = Record(runId, "devdax");
        using DaxMapping map = allocator.Map(RangeName);
        Assert.Equal(MappingBacking.DeviceDax, map.Backing);
        record.CopyTo(map.GetSpan(DeviceOffset, record.Length));
        map.Persist(DeviceOffset, record.Length);
        output.WriteLine($"boot 1: persisted {record.Length} bytes for run {runId} in range {range} of {device.DevicePath} ({map.Granularity}, label sequence {allocator.Sequence})");
    }

    [Fact]
    public void Second_boot_finds_the_labelled_range_and_reads_back_the_record_persisted_in_the_first_boot()
    {
        string runId = RequirePhase(2);
        using DaxDevice device = DaxDevice.Open(IntegrationEnvironment.RequireDevice());
        using DaxRangeAllocator allocator = DaxRangeAllocator.Open(device);
        DaxAllocation range = allocator.Get(RangeName);
        byte[] expected = Record(runId, "devdax");
        using DaxMapping map = allocator.Map(RangeName, new DaxMappingOptions { ReadOnly = true });
        Assert.Equal(expected, map.GetReadOnlySpan(DeviceOffset, expected.Length).ToArray());
        output.WriteLine($"boot 2: found range {range} (label sequence {allocator.Sequence}) and read back the {expected.Length} bytes of run {runId} from {device.DevicePath}");
    }

    private static string RequirePhase(int phase)
    {
        string? runId = IntegrationEnvironment.RunId;
        if (IntegrationEnvironment.Phase != phase || runId is null)
        {
            Assert.Skip($"runs only in boot {phase} of tests/devdax-vm/run.sh (DIRECTPMEM_VM_PHASE={IntegrationEnvironment.Phase}).");
        }
        return runId;
    }

    private static (string Dir, string RunId) Require(int phase)
    {
        string dir = IntegrationEnvironment.RequireFsDaxDirectory();
        string? runId = IntegrationEnvironment.RunId;
        if (IntegrationEnvironment.Phase != phase || runId is null)
        {
            Assert.Skip($"runs only in boot {phase} of tests/devdax-vm/run.sh (DIRECTPMEM_VM_PHASE={IntegrationEnvironment.Phase}).");
        }
        return (dir, runId);
    }

    /// <summary>A record that only this run produces: a header naming the run and a pseudo-random body seeded by it.</summary>
    internal static byte[] Record(string runId, string what)
    {
        byte[] header = Encoding.ASCII.GetBytes($"DirectPmem run {runId} {what}\n");
        byte[] record = new byte[4096 + 77];
        header.CopyTo(record, 0);
        int seed = BinaryPrimitives.ReadInt32LittleEndian(System.Security.Cryptography.SHA256.HashData(Encoding.ASCII.GetBytes(runId + what)));
        new Random(seed).NextBytes(record.AsSpan(header.Length));
        return record;
    }
}
