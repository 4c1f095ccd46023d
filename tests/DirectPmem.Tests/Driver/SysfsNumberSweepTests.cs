using DirectPmem.Driver;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Driver;

/// <summary>
/// Every number the bus reads from sysfs, set in turn to every boundary value: a scan never throws
/// (a broken device or region is one typed error in <see cref="DaxTopology.Errors"/>), and
/// GetDevices/GetRegions throw only <see cref="DaxConfigurationException"/>.
/// </summary>
public sealed class SysfsNumberSweepTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private static readonly string[] s_values =
    [
        "0", "1", "-1", "-2", "4095", "4096", "2097152", "0x200000", "1073741824", "2147483647", "2147483648", "4294967295", "4294967296",
        "9223372036854775807", "9223372036854775808", "0x7fffffffffffffff", "0x8000000000000000", "18446744073709551615",
        "0xffffffffffffffff", "18446744073709551616", "0x10000000000000000", "", "0x", "abc", "1 2", "+5", "1e9", "٣",
    ];

    // Relative path of every numeric attribute, with its sane value.
    private static readonly (string File, string Good)[] s_attributes =
    [
        ("bus/dax/devices/dax0.0/size", "4194304"),
        ("bus/dax/devices/dax0.0/align", "2097152"),
        ("bus/dax/devices/dax0.0/numa_node", "0"),
        ("bus/dax/devices/dax0.0/target_node", "1"),
        ("bus/dax/devices/dax0.0/resource", "0x100000000"),
        ("bus/dax/devices/dax0.0/dev", "252:0"),
        ("bus/dax/devices/dax0.0/mapping0/start", "0x100000000"),
        ("bus/dax/devices/dax0.0/mapping0/end", "0x1003fffff"),
        ("bus/dax/devices/dax0.0/mapping0/page_offset", "0x0"),
        ("bus/dax/devices/dax_region/align", "2097152"), // the device's parent directory
        ("bus/nd/devices/region0/size", "8388608"),
        ("bus/nd/devices/region0/align", "16777216"),
        ("bus/nd/devices/region0/numa_node", "0"),
        ("bus/nd/devices/region0/target_node", "1"),
        ("bus/nd/devices/region0/resource", "0x100000000"),
        ("bus/nd/devices/region0/badblocks", "8 8"),
    ];

    private void Write(string relative, string text)
    {
        string path = Path.Combine(_temp.Path, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text + "\n");
    }

    private DaxBus Tree()
    {
        foreach ((string file, string good) in s_attributes)
        {
            Write(file, good);
        }
        Write("bus/nd/devices/region0/persistence_domain", "memory_controller");
        return new DaxBus(_temp.Path);
    }

    [Fact]
    public void EveryBoundaryValueInEveryNumericAttributeIsAValidResultOrATypedError()
    {
        DaxBus bus = Tree();
        DaxTopology clean = bus.Scan();
        Assert.Empty(clean.Errors);
        Assert.Single(clean.Devices);
        Assert.Single(clean.Regions);

        int cases = 0, refused = 0;
        foreach ((string file, string good) in s_attributes)
        {
            foreach (string value in s_values)
            {
                Write(file, value);
                cases++;
                DaxTopology topology = bus.Scan();
                refused += topology.Errors.Count;
                // The region and the device are each either built or reported: never both, never neither.
                Assert.Equal(2, topology.Devices.Count + topology.Regions.Count + topology.Errors.Count);
                foreach (DaxConfigurationException error in topology.Errors)
                {
                    Assert.StartsWith(_temp.Path, error.FilePath, StringComparison.Ordinal);
                }
                foreach (Func<object> get in new Func<object>[] { bus.GetDevices, bus.GetRegions })
                {
                    Exception? thrown = Record.Exception(get);
                    Assert.True(thrown is null or DaxConfigurationException, $"{file} = '{value}': {thrown}");
                }
            }
            Write(file, good);
        }
        Assert.True(refused > cases / 2, $"only {refused} of {cases} cases were refused");
    }

    [Fact]
    public void RangesWhoseLengthsAddUpPast2To63AreATypedErrorNotAnOverflow()
    {
        Write("bus/dax/devices/dax0.0/size", "0x7ffffffffffff000");
        Write("bus/dax/devices/dax0.0/align", "4096");
        // Two ranges of 2^62 bytes each: each fits, their sum does not.
        Write("bus/dax/devices/dax0.0/mapping0/start", "0x0");
        Write("bus/dax/devices/dax0.0/mapping0/end", "0x3fffffffffffffff");
        Write("bus/dax/devices/dax0.0/mapping0/page_offset", "0x0");
        Write("bus/dax/devices/dax0.0/mapping1/start", "0x4000000000000000");
        Write("bus/dax/devices/dax0.0/mapping1/end", "0x7fffffffffffffff");
        Write("bus/dax/devices/dax0.0/mapping1/page_offset", "0x4000000000000");
        DaxTopology topology = new DaxBus(_temp.Path).Scan();
        DaxConfigurationException error = Assert.Single(topology.Errors);
        Assert.Empty(topology.Devices);
        Assert.Contains("2^63", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AnEndNear2To63IsReportedInErrors()
    {
        Write("bus/dax/devices/dax0.0/size", "4194304");
        Write("bus/dax/devices/dax0.0/align", "2097152");
        Write("bus/dax/devices/dax0.0/mapping0/start", "0x0");
        Write("bus/dax/devices/dax0.0/mapping0/end", "0x7ffffffffffffffe");
        Write("bus/dax/devices/dax0.0/mapping0/page_offset", "0x0");
        DaxTopology topology = new DaxBus(_temp.Path).Scan();
        Assert.Equal(DaxConfigurationRule.Unaligned, Assert.Single(topology.Errors).Rule);
        Write("bus/dax/devices/dax0.0/mapping0/end", "0x7fffffffffffffff");
        Assert.Single(new DaxBus(_temp.Path).Scan().Errors);
    }
}
