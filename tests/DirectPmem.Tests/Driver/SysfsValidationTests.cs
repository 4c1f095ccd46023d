using DirectPmem.Driver;
using DirectPmem.Tests.Fixtures;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Driver;

/// <summary>Every number read from sysfs is validated: trees built per case in a temporary directory.</summary>
public sealed class SysfsValidationTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private string Device => Path.Combine(_temp.Path, "bus", "dax", "devices", "dax0.0");

    private DaxBus Bus(string size, string align)
    {
        Directory.CreateDirectory(Device);
        File.WriteAllText(Path.Combine(Device, "size"), size + "\n");
        File.WriteAllText(Path.Combine(Device, "align"), align + "\n");
        return new DaxBus(_temp.Path);
    }

    private void Mapping(int index, string? start, string? end, string? pageOffset)
    {
        string dir = Path.Combine(Device, "mapping" + index);
        Directory.CreateDirectory(dir);
        if (start is not null) File.WriteAllText(Path.Combine(dir, "start"), start);
        if (end is not null) File.WriteAllText(Path.Combine(dir, "end"), end);
        if (pageOffset is not null) File.WriteAllText(Path.Combine(dir, "page_offset"), pageOffset);
    }

    [Theory]
    [InlineData("0", "2097152", DaxConfigurationRule.OutOfRange, "size")]
    [InlineData("-2097152", "2097152", DaxConfigurationRule.NotANumber, "size")]
    [InlineData("99999999999999999999", "2097152", DaxConfigurationRule.NotANumber, "size")]
    [InlineData("9223372036854775808", "2097152", DaxConfigurationRule.OutOfRange, "size")]
    [InlineData("", "2097152", DaxConfigurationRule.NotANumber, "size")]
    [InlineData("0x", "2097152", DaxConfigurationRule.NotANumber, "size")]
    [InlineData("3145728", "2097152", DaxConfigurationRule.Unaligned, "size")]
    [InlineData("4194304", "0", DaxConfigurationRule.NotAPowerOfTwo, "align")]
    [InlineData("4194304", "0x200001", DaxConfigurationRule.NotAPowerOfTwo, "align")]
    [InlineData("4194304", "8192", DaxConfigurationRule.NotAPageSize, "align")]
    [InlineData("4194304", "2147483648", DaxConfigurationRule.NotAPageSize, "align")]
    public void EveryBadSizeOrAlignIsATypedErrorNamingTheFile(string size, string align, DaxConfigurationRule rule, string file)
    {
        var error = Assert.Throws<DaxConfigurationException>(() => Bus(size, align).GetDevice("dax0.0"));
        Assert.Equal(rule, error.Rule);
        Assert.Equal(Path.Combine(Device, file), error.FilePath);
    }

    [Fact]
    public void HexadecimalNumbersAreAccepted()
    {
        DaxDevice dax = Bus("0x400000", "0x200000").GetDevice("dax0.0");
        Assert.Equal(4 * 1024 * 1024, dax.Size);
    }

    [Fact]
    public void UnreadableMappingRangesLeaveTheListEmpty()
    {
        DaxBus bus = Bus("4194304", "2097152");
        Mapping(0, null, null, null);
        Assert.Empty(bus.GetDevice("dax0.0").Ranges);
    }

    [Fact]
    public void AMappingRangeMissingOneFileIsRefused()
    {
        DaxBus bus = Bus("4194304", "2097152");
        Mapping(0, "0x100000000", null, "0x0");
        var error = Assert.Throws<DaxConfigurationException>(() => bus.GetDevice("dax0.0"));
        Assert.Equal(DaxConfigurationRule.MissingAttribute, error.Rule);
        Assert.EndsWith("mapping0/end", error.FilePath, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("0x100000000", "0xffffffff", "0x0", DaxConfigurationRule.InvalidRange)]
    [InlineData("0x0", "0xffffffffffffffff", "0x0", DaxConfigurationRule.InvalidRange)]
    [InlineData("0x100000000", "0x1003fffff", "0x200", DaxConfigurationRule.RangesDoNotAddUp)]
    [InlineData("0x100000000", "0x1003fffff", "0xffffffffffffffff", DaxConfigurationRule.InvalidRange)]
    [InlineData("0x100000000", "0x1001fffff", "0x0", DaxConfigurationRule.RangesDoNotAddUp)]
    [InlineData("0x100000000", "0x1003ffffe", "0x0", DaxConfigurationRule.Unaligned)]
    public void MalformedMappingRangesAreRefused(string start, string end, string pageOffset, DaxConfigurationRule rule)
    {
        DaxBus bus = Bus("4194304", "2097152");
        Mapping(0, start, end, pageOffset);
        Assert.Equal(rule, Assert.Throws<DaxConfigurationException>(() => bus.GetDevice("dax0.0")).Rule);
    }

    [Fact]
    public void RangesOverlappingInDeviceOffsetsAreRefused()
    {
        DaxBus bus = Bus("4194304", "2097152");
        Mapping(0, "0x100000000", "0x1001fffff", "0x0");
        Mapping(1, "0x200000000", "0x2001fffff", "0x0");
        var error = Assert.Throws<DaxConfigurationException>(() => bus.GetDevice("dax0.0"));
        Assert.Equal(DaxConfigurationRule.RangesOverlap, error.Rule);
    }

    [Fact]
    public void ANonNumericNodeIsRefusedAndMinusOneMeansNone()
    {
        DaxBus bus = Bus("4194304", "2097152");
        File.WriteAllText(Path.Combine(Device, "numa_node"), "-1\n");
        Assert.Equal(-1, bus.GetDevice("dax0.0").NumaNode);
        File.WriteAllText(Path.Combine(Device, "target_node"), "node1\n");
        Assert.Equal(DaxConfigurationRule.NotANumber, Assert.Throws<DaxConfigurationException>(() => bus.GetDevice("dax0.0")).Rule);
        File.WriteAllText(Path.Combine(Device, "target_node"), "-2\n");
        Assert.Equal(DaxConfigurationRule.OutOfRange, Assert.Throws<DaxConfigurationException>(() => bus.GetDevice("dax0.0")).Rule);
    }

    [Fact]
    public void AMissingBusIsAnEmptyScan()
    {
        DaxTopology topology = new DaxBus(_temp.Path).Scan();
        Assert.Empty(topology.Devices);
        Assert.Empty(topology.Regions);
        Assert.Empty(topology.Errors);
    }
}
