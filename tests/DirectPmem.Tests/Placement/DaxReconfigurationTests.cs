using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Placement;
using DirectPmem.Tests.Fixtures;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Placement;

/// <summary>
/// The refusals of <see cref="DaxReconfiguration"/> on copies of the tiers fixture (the real mode
/// changes run in the qemu guest: IntegrationTests.TierTests). They need root, as the real thing does;
/// without root each test checks the NotRoot refusal instead.
/// </summary>
public sealed class DaxReconfigurationTests
{
    private static bool IsRoot => Environment.UserName == "root" || Interop.Libc.GetEUid() == 0;

    private static DaxDevice Device(string root, string name) => new DaxBus(root).GetDevice(name);

    [Fact]
    public void WithoutTheDriverLoadedTheErrorSaysWhichModuleToLoad()
    {
        DaxDevice dax = Device(FixturePaths.Sysfs("tiers"), "dax0.0");
        DaxReconfigurationException e = Assert.Throws<DaxReconfigurationException>(() => DaxReconfiguration.ToSystemRam(dax));
        if (!IsRoot)
        {
            Assert.Equal(DaxReconfigurationProblem.NotRoot, e.Problem);
            return;
        }
        Assert.Equal(DaxReconfigurationProblem.DriverMissing, e.Problem);
        Assert.Equal("dax0.0", e.Device);
        Assert.Contains("modprobe kmem", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BlocksAlreadyOnlineInAnotherZoneAreRefusedNamingAutoOnlineBlocks()
    {
        using TempDirectory copy = FixtureCopy.Of("tiers");
        Directory.CreateDirectory(Path.Join(copy.Path, "bus", "dax", "drivers", "kmem"));
        File.WriteAllText(Path.Join(copy.Path, "devices", "system", "memory", "auto_online_blocks"), "online\n");
        DaxDevice dax = Device(copy.Path, "dax1.0");
        DaxReconfigurationException e = Assert.Throws<DaxReconfigurationException>(() => DaxReconfiguration.ToSystemRam(dax, MemoryZone.Normal));
        Assert.SkipUnless(IsRoot, "mode changes need root; without it the refusal is NotRoot: " + e.Message);
        Assert.Equal(DaxReconfigurationProblem.BlocksOnlineInOtherZone, e.Problem);
        Assert.Contains("memory520 was already onlined in zone 'Movable', not Normal", e.Message, StringComparison.Ordinal);
        Assert.Contains("auto_online_blocks is 'online'", e.Message, StringComparison.Ordinal);
        // Nothing was written: the offline block stays offline.
        Assert.Equal("offline", File.ReadAllText(Path.Join(copy.Path, "devices", "system", "memory", "memory521", "state")).Trim());
    }

    [Fact]
    public void ABlockTheKernelWillNotOfflineIsRefusedAndTheBlocksOfflinedBeforeItAreOnlinedAgain()
    {
        using TempDirectory copy = FixtureCopy.Of("tiers");
        Directory.CreateDirectory(Path.Join(copy.Path, "bus", "dax", "drivers", "device_dax"));
        string memory = Path.Join(copy.Path, "devices", "system", "memory");
        // memory521 online (Movable) too, and its state file one the kernel refuses to write, even for root: a
        // sysfs attribute without a store method (kernfs gives EACCES).
        const string readOnlyAttribute = "/sys/devices/system/node/possible";
        Assert.SkipUnless(File.Exists(readOnlyAttribute), $"{readOnlyAttribute} does not exist: no read-only sysfs attribute to stand for a refused write.");
        File.WriteAllText(Path.Join(memory, "memory521", "online"), "1\n");
        File.WriteAllText(Path.Join(memory, "memory521", "valid_zones"), "Movable\n");
        File.Delete(Path.Join(memory, "memory521", "state"));
        File.CreateSymbolicLink(Path.Join(memory, "memory521", "state"), readOnlyAttribute);
        DaxDevice dax = Device(copy.Path, "dax1.0");
        Assert.Equal(2, dax.MemoryBlocks?.Count(b => b.IsOnline));

        DaxReconfigurationException e = Assert.Throws<DaxReconfigurationException>(() => DaxReconfiguration.ToDeviceDax(dax));
        Assert.SkipUnless(IsRoot, "mode changes need root; without it the refusal is NotRoot: " + e.Message);
        Assert.Equal(DaxReconfigurationProblem.OfflineBusy, e.Problem);
        Assert.Contains("would not offline memory521 (", e.Message, StringComparison.Ordinal);
        Assert.Contains("The 1 block(s) offlined before it were onlined again.", e.Message, StringComparison.Ordinal);
        Assert.Equal("online_movable", File.ReadAllText(Path.Join(memory, "memory520", "state")));
        Assert.EndsWith(Path.Join("memory521", "state"), e.Path, StringComparison.Ordinal);
    }

    [Fact]
    public void AnEmulatedDeviceHasNoModeToChange()
    {
        using DaxDevice emulated = DaxDevice.CreateEmulatedMemory("reconfigure", 2L << 20, PageSize.Pmd);
        Assert.Equal("device", Assert.Throws<ArgumentException>(() => DaxReconfiguration.ToSystemRam(emulated)).ParamName);
    }

    [Fact]
    public void TakingADeviceFromUnderALiveMappingIsRefusedNamingThisProcessAndTheMappingKeepsItsBytes()
    {
        // The fixture's dax0.0 (devdax) with its node in a directory of ours: a file this process maps stands for
        // /dev/dax0.0, so /proc/self/maps lists it as a live mapping of the device, as the kernel lists the real one.
        using TempDirectory copy = FixtureCopy.Of("tiers");
        using var dev = new TempDirectory();
        Directory.CreateDirectory(Path.Join(copy.Path, "bus", "dax", "drivers", "kmem"));
        Directory.CreateDirectory(Path.Join(copy.Path, "bus", "dax", "drivers", "device_dax"));
        string node = Path.Join(dev.Path, "dax0.0");
        DaxDevice dax = new DaxBus(copy.Path, dev.Path).GetDevice("dax0.0");
        Assert.Equal(DaxDeviceMode.DeviceDax, dax.DeviceMode);
        Assert.Equal(node, dax.DevicePath);
        using var file = System.IO.MemoryMappedFiles.MemoryMappedFile.CreateFromFile(node, FileMode.CreateNew, null, 8192);
        using var view = file.CreateViewAccessor(0, 8192);
        view.Write(4096, 0xC3C3C3C3C3C3C3C3UL);

        DaxReconfigurationException e = Assert.Throws<DaxReconfigurationException>(() => DaxReconfiguration.ToSystemRam(dax));
        Assert.SkipUnless(IsRoot, "mode changes need root; without it the refusal is NotRoot: " + e.Message);
        Assert.Equal(DaxReconfigurationProblem.DeviceInUse, e.Problem);
        Assert.Contains($"{node} is mapped by process {Environment.ProcessId} (", e.Message, StringComparison.Ordinal);
        Assert.Contains("nothing was changed", e.Message, StringComparison.Ordinal);
        // Nothing was written (no unbind, no kmem id) and the mapping still holds its bytes.
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Join(copy.Path, "bus", "dax", "drivers", "device_dax")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Join(copy.Path, "bus", "dax", "drivers", "kmem")));
        Assert.Equal(0xC3C3C3C3C3C3C3C3UL, view.ReadUInt64(4096));
    }

    [Fact]
    public void ASystemRamDeviceRefusesToBeMappedAsDeviceDax()
    {
        DaxDevice dax = Device(FixturePaths.Sysfs("tiers"), "dax1.0");
        Assert.Equal(DaxDeviceMode.SystemRam, dax.DeviceMode);
        DaxConfigurationException e = Assert.Throws<DaxConfigurationException>(() => dax.MapRaw());
        Assert.Equal(DaxConfigurationRule.NotInDeviceDaxMode, e.Rule);
        Assert.Contains("dax1.0 is in system-ram mode (bound to kmem)", e.Message, StringComparison.Ordinal);
        Assert.Contains("NodeMemory.Map with node 2", e.Message, StringComparison.Ordinal);
    }
}
