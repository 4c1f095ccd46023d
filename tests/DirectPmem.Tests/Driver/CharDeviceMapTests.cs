using DirectPmem.Driver;
using DirectPmem.Tests.Fixtures;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Driver;

/// <summary>
/// Drives the real-device path (open, fstat, MAP_SHARED_VALIDATE | MAP_SYNC) against character
/// devices every machine has, through a sysfs tree built in a temporary directory.
/// </summary>
public sealed class CharDeviceMapTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    // A one-device sysfs tree: bus/dax/devices/dax9.0 with the given dev, and a /dev with dax9.0 -> target.
    private DaxBus BuildBus(string dev, string target)
    {
        string device = Path.Combine(_temp.Path, "sys", "bus", "dax", "devices", "dax9.0");
        Directory.CreateDirectory(device);
        File.WriteAllText(Path.Combine(device, "size"), "4194304\n");
        File.WriteAllText(Path.Combine(device, "align"), "2097152\n");
        File.WriteAllText(Path.Combine(device, "dev"), dev + "\n");
        string devRoot = Path.Combine(_temp.Path, "dev");
        Directory.CreateDirectory(devRoot);
        File.CreateSymbolicLink(Path.Combine(devRoot, "dax9.0"), target);
        return new DaxBus(Path.Combine(_temp.Path, "sys"), devRoot);
    }

    [Fact]
    public void MapOpensTheNodeChecksItsNumberAndAsksForMapSync()
    {
        // /dev/zero is 1:5 and does not support MAP_SYNC: the kernel's refusal proves the flags reached mmap.
        DaxDevice dax = BuildBus("1:5", "/dev/zero").GetDevice("dax9.0");
        Assert.Null(dax.Region);
        Assert.Equal("unbound", dax.Mode);
        var error = Assert.Throws<PmemException>(() => dax.Map());
        Assert.Equal("mmap", error.Call);
        Assert.Equal("EOPNOTSUPP", error.ErrnoName);
        Assert.Contains("MAP_SYNC", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ARequiredGranularityTheDeviceCannotGiveIsRefusedBeforeMmap()
    {
        // Without eADR a device gives cache-line granularity; byte granularity is refused with the
        // reason, before /dev/zero's MAP_SYNC refusal could happen.
        if (DirectPmem.Persistence.Pmem.IsEadr)
        {
            Assert.Skip("this platform reports eADR, where byte granularity is available");
        }
        DaxDevice dax = BuildBus("1:5", "/dev/zero").GetDevice("dax9.0");
        var error = Assert.Throws<PmemCapabilityException>(() => dax.Map(new() { RequiredGranularity = DirectPmem.Persistence.PersistGranularity.Byte }));
        Assert.Contains("eADR", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ANodeWhoseNumberDiffersFromSysfsIsRefusedBeforeMmap()
    {
        DaxDevice dax = BuildBus("252:0", "/dev/null").GetDevice("dax9.0");
        var error = Assert.Throws<DaxConfigurationException>(() => dax.Map());
        Assert.Equal(DaxConfigurationRule.NotDeviceDax, error.Rule);
        Assert.Contains("1:3", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ANodeThatIsARegularFileIsRefusedBeforeMmap()
    {
        string plain = Path.Combine(_temp.Path, "plain");
        File.WriteAllBytes(plain, new byte[8192]);
        DaxDevice dax = BuildBus("252:0", plain).GetDevice("dax9.0");
        var error = Assert.Throws<DaxConfigurationException>(() => dax.Map(new() { Length = 2 * 1024 * 1024 }));
        Assert.Equal(DaxConfigurationRule.NotDeviceDax, error.Rule);
    }

    [Fact]
    public void LabelOwnershipOfARealDeviceIsAnExclusiveLockOnItsNode()
    {
        DaxBus bus = BuildBus("1:5", "/dev/zero");
        DaxDevice first = bus.GetDevice("dax9.0");
        DaxDevice second = bus.GetDevice("dax9.0");
        using (LabelLock.Acquire(first, shared: false))
        {
            var error = Assert.Throws<PmemInUseException>(() => LabelLock.Acquire(second, shared: false));
            Assert.Equal("flock(LOCK_EX|LOCK_NB)", error.Call);
            Assert.Throws<PmemInUseException>(() => LabelLock.Acquire(first, shared: false));
        }
        // A reader takes a shared lock: refused while a writer holds it, shared with other readers.
        using (LabelLock.Acquire(second, shared: false))
        {
            Assert.Equal("flock(LOCK_SH|LOCK_NB)", Assert.Throws<PmemInUseException>(() => LabelLock.Acquire(first, shared: true)).Call);
        }
        using (LabelLock.Acquire(first, shared: true))
        {
            LabelLock.Acquire(second, shared: true).Dispose();
            // Each take opens the node for itself, so flock sees two lockers even on one instance:
            // readers share it, and a writer is refused by the in-process count before flock.
            using (LabelLock.Acquire(first, shared: true))
            {
                Assert.Contains("2 read-only", Assert.Throws<PmemInUseException>(() => LabelLock.Acquire(first, shared: false)).Message, StringComparison.Ordinal);
            }
            Assert.Equal("flock(LOCK_EX|LOCK_NB)", Assert.Throws<PmemInUseException>(() => LabelLock.Acquire(second, shared: false)).Call);
        }
        // A disposed device takes no lock and maps nothing.
        DaxDevice closed = bus.GetDevice("dax9.0");
        closed.Dispose();
        Assert.Equal(nameof(DaxDevice), Assert.Throws<ObjectDisposedException>(() => closed.Map()).ObjectName);
        Assert.Equal(nameof(DaxDevice), Assert.Throws<ObjectDisposedException>(() => DaxRangeAllocator.OpenReadOnly(closed)).ObjectName);
        // The allocator gives the lock back when the label area cannot be mapped (no MAP_SYNC on /dev/zero).
        Assert.Equal("EOPNOTSUPP", Assert.Throws<PmemException>(() => DaxRangeAllocator.Open(first)).ErrnoName);
        LabelLock.Acquire(first, shared: false).Dispose();
    }
}
