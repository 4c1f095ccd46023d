using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Tests.Fixtures;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Driver;

/// <summary>
/// Every public entry point of the driver layer, misused: each refusal has its own exception type
/// and a message that names the offending value.
/// </summary>
public sealed class DriverMisuseTests : IDisposable
{
    private const long Mib2 = 2 * 1024 * 1024;
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private static T Refused<T>(Action action, params string[] named) where T : Exception
    {
        T error = Assert.Throws<T>(action);
        foreach (string fragment in named)
        {
            Assert.Contains(fragment, error.Message, StringComparison.Ordinal);
        }
        return error;
    }

    private DaxDevice Emulated(string name = "dev.emu", long size = 16 * Mib2, PageSize align = PageSize.Pmd)
        => DaxDevice.CreateEmulated(_temp.File(name), size, align);

    // ---- DaxBus ----

    [Fact]
    public void ABusOnARootThatDoesNotExistOrIsAFileSaysSo()
    {
        string missing = _temp.File("no-such-sysfs");
        foreach (Action call in new Action[]
        {
            () => new DaxBus(missing).Scan(), () => new DaxBus(missing).GetRegions(), () => new DaxBus(missing).GetDevices(),
            () => new DaxBus(missing).GetDevice("dax0.0"), () => new DaxBus(missing).IdentifyCharDevice(252, 0),
        })
        {
            Assert.Equal(DaxConfigurationRule.BadSysfsRoot, Refused<DaxConfigurationException>(call, missing, "does not exist").Rule);
        }
        string file = _temp.File("a-file");
        File.WriteAllText(file, "not sysfs");
        Assert.Equal(DaxConfigurationRule.BadSysfsRoot, Refused<DaxConfigurationException>(() => new DaxBus(file).Scan(), file, "is a file").Rule);
    }

    [Fact]
    public void ABusRefusesRootsTheKernelWouldSeeDifferently()
    {
        Assert.Equal("sysfsRoot", Refused<ArgumentException>(() => _ = new DaxBus("/sys\0/evil"), "index 4", "'/sys'").ParamName);
        Assert.Equal("deviceRoot", Refused<ArgumentException>(() => _ = new DaxBus("/sys", "/dev\ud800"), "surrogate").ParamName);
        Assert.Equal("sysfsRoot", Assert.Throws<ArgumentException>(() => _ = new DaxBus("")).ParamName);
        Assert.Throws<ArgumentNullException>(() => _ = new DaxBus(null!));
    }

    [Theory]
    [InlineData("dax0.1")]
    [InlineData("../dax0.0")]
    [InlineData("region0")]
    [InlineData("dax0")]
    public void GetDeviceNamesTheDeviceThatIsNotThere(string name)
    {
        var bus = new DaxBus(FixturePaths.Sysfs("good"));
        Assert.Equal(DaxConfigurationRule.NoSuchDevice, Refused<DaxConfigurationException>(() => bus.GetDevice(name), $"'{name}'").Rule);
    }

    [Fact]
    public void IdentifyAndOpenCharDeviceNameTheNumbersAndPaths()
    {
        var bus = new DaxBus(FixturePaths.Sysfs("good"));
        Refused<DaxConfigurationException>(() => bus.IdentifyCharDevice(4095, 77), "4095:77");
        string missing = _temp.File("no-node");
        Refused<PmemNotFoundException>(() => bus.OpenCharDevice(missing), missing, "ENOENT");
        string plain = _temp.File("plain");
        File.WriteAllText(plain, "x");
        Assert.Equal(DaxConfigurationRule.NotDeviceDax, Refused<DaxConfigurationException>(() => bus.OpenCharDevice(plain), plain).Rule);
        Refused<ArgumentException>(() => bus.OpenCharDevice("/dev/dax0.0\0x"), "NUL");
        Refused<PmemNotFoundException>(() => DaxDevice.Open(missing), missing);
    }

    // ---- DaxDevice ----

    [Theory]
    [InlineData(3 * Mib2 / 2, PageSize.Pmd, "size", "0x300000")]
    [InlineData(0, PageSize.Pmd, "size", "0")]
    [InlineData(-Mib2, PageSize.Pmd, "size", "-2097152")]
    [InlineData(4 * Mib2, (PageSize)8192, "align", "8192")]
    public void CreateEmulatedNamesTheBadGeometry(long size, PageSize align, string param, string value)
    {
        var error = Assert.ThrowsAny<ArgumentException>(() => DaxDevice.CreateEmulated(_temp.File("bad.emu"), size, align));
        Assert.Equal(param, error.ParamName);
        Assert.Contains(value, error.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(_temp.File("bad.emu")));
    }

    [Fact]
    public void CreateEmulatedRefusesAPathTheKernelWouldCutOrAlterAndAnExistingFile()
    {
        string cut = _temp.File("a.emu");
        Assert.Equal("path", Refused<ArgumentException>(() => DaxDevice.CreateEmulated(cut + "\0.hidden", 4 * Mib2, PageSize.Pmd), "NUL", cut).ParamName);
        Assert.False(File.Exists(cut));
        Assert.Equal("path", Refused<ArgumentException>(() => DaxDevice.CreateEmulated(_temp.File("b\udc00.emu"), 4 * Mib2, PageSize.Pmd), "surrogate", "\\udc00").ParamName);
        using (Emulated("taken.emu"))
        {
        }
        Refused<PmemException>(() => DaxDevice.CreateEmulated(_temp.File("taken.emu"), 4 * Mib2, PageSize.Pmd), _temp.File("taken.emu"), "EEXIST");
    }

    [Fact]
    public void CreateEmulatedMemoryRefusesNamesTheKernelWouldAlterAndHugetlbAt4KiB()
    {
        Assert.Equal("name", Refused<ArgumentException>(() => DaxDevice.CreateEmulatedMemory("a\0b", 4 * Mib2, PageSize.Pmd), "NUL").ParamName);
        Assert.Equal("name", Refused<ArgumentException>(() => DaxDevice.CreateEmulatedMemory(new string('n', 250), 4 * Mib2, PageSize.Pmd), "250 UTF-8 bytes", "249").ParamName);
        Assert.Equal("hugePages", Refused<ArgumentException>(() => DaxDevice.CreateEmulatedMemory("m", 4 * Mib2, PageSize.Pte, HugePages.Hugetlb), "4 KiB").ParamName);
        Assert.Equal("size", Assert.ThrowsAny<ArgumentException>(() => DaxDevice.CreateEmulatedMemory("m", Mib2 + 4096, PageSize.Pmd)).ParamName);
    }

    [Fact]
    public void OpenEmulatedRefusesSpecialFilesInsteadOfBlockingOnThem()
    {
        string fifo = _temp.File("fifo");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", ["-m", "600", fifo]))
        {
            mkfifo.WaitForExit();
            Assert.Equal(0, mkfifo.ExitCode);
        }
        // Opening a FIFO for reading would block until a writer came; it is refused after a stat.
        var error = Refused<DaxConfigurationException>(() => DaxDevice.OpenEmulated(fifo), fifo, "FIFO");
        Assert.Equal(DaxConfigurationRule.BadDescriptor, error.Rule);
        Refused<DaxConfigurationException>(() => DaxDevice.OpenEmulated("/dev/zero"), "/dev/zero", "character device");
        Refused<DaxConfigurationException>(() => DaxDevice.OpenEmulated(_temp.Path), _temp.Path, "directory");
        Refused<PmemNotFoundException>(() => DaxDevice.OpenEmulated(_temp.File("absent.emu")), _temp.File("absent.emu"));
        Refused<ArgumentException>(() => DaxDevice.OpenEmulated(_temp.File("x\0y")), "NUL");
    }

    [Fact]
    public void OpenEmulatedNamesTheGeometryItWasNotCreatedWith()
    {
        using (Emulated())
        {
        }
        string path = _temp.File("dev.emu");
        Refused<DaxConfigurationException>(() => DaxDevice.OpenEmulated(path, PageSize.Pte), "4 KiB", "2 MiB");
        Refused<DaxConfigurationException>(() => DaxDevice.OpenEmulated(path, size: 8 * Mib2), "16777216", "33554432");
    }

    [Fact]
    public void MapAndMapRawNameTheMisalignedOrOutOfRangeValue()
    {
        using DaxDevice dax = Emulated();
        foreach (Func<DaxMappingOptions, DaxMapping> map in new Func<DaxMappingOptions, DaxMapping>[] { o => dax.Map(o), o => dax.MapRaw(o) })
        {
            Assert.Equal("Offset", Refused<ArgumentException>(() => map(new() { Offset = 4096, Length = Mib2 }), "0x1000").ParamName);
            Refused<ArgumentOutOfRangeException>(() => map(new() { Offset = 16 * Mib2, Length = Mib2 }), "0x2000000");
            Refused<ArgumentOutOfRangeException>(() => map(new() { Offset = -Mib2, Length = Mib2 }), "-2097152");
            Refused<ArgumentException>(() => map(new() { PageSize = PageSize.Pte }), "4 KiB");
        }
    }

    [Fact]
    public void MapOfADeviceWithALabelTableKeepsOutOfTheLabelAreaUnlessRaw()
    {
        using DaxDevice dax = Emulated();
        using (DaxMapping before = dax.Map())
        {
            Assert.Equal(0, before.SourceOffset);
            Assert.Equal(16 * Mib2, before.Length);
        }
        using DaxRangeAllocator labels = DaxRangeAllocator.Format(dax);
        labels.Allocate("kept", Mib2);
        using (DaxMapping whole = dax.Map())
        {
            Assert.Equal(labels.LabelAreaLength, whole.SourceOffset);
            Assert.Equal(16 * Mib2 - labels.LabelAreaLength, whole.Length);
            // The accident: a fill of "the whole device" no longer reaches the labels.
            whole.Fill(0, whole.Length, 0);
        }
        var error = Refused<DaxLabelException>(() => dax.Map(new() { Offset = 0, Length = Mib2 }), "offset 0", "MapRaw", dax.DevicePath);
        Assert.Equal(DaxLabelRule.LabelAreaProtected, error.Rule);
        using (DaxMapping raw = dax.MapRaw(new() { Length = Mib2, ReadOnly = true }))
        {
            Assert.NotEqual(0UL, raw.GetReadOnlyRef<ulong>(0) | raw.GetReadOnlyRef<ulong>(4096));
        }
        labels.Dispose();
        // Another process (here: a fresh allocator-less open) sees the table on the media and is kept out too.
        dax.Dispose();
        using DaxDevice again = DaxDevice.OpenEmulated(_temp.File("dev.emu"));
        Assert.Equal(DaxLabelRule.LabelAreaProtected, Assert.Throws<DaxLabelException>(() => again.Map(new() { Length = Mib2 })).Rule);
        using DaxRangeAllocator reopened = DaxRangeAllocator.Open(again);
        Assert.Equal("kept", Assert.Single(reopened.Ranges).Name);
    }

    // ---- DaxRangeAllocator ----

    [Fact]
    public void AllocatorEntryPointsRefuseNullAndDisposedUse()
    {
        Assert.Equal("device", Assert.Throws<ArgumentNullException>(() => DaxRangeAllocator.Format(null!)).ParamName);
        Assert.Equal("device", Assert.Throws<ArgumentNullException>(() => DaxRangeAllocator.Open(null!)).ParamName);
        Assert.Equal("device", Assert.Throws<ArgumentNullException>(() => DaxRangeAllocator.OpenReadOnly(null!)).ParamName);
        Assert.Equal("align", Refused<ArgumentOutOfRangeException>(() => DaxRangeAllocator.LabelAreaLengthFor((PageSize)12345), "12345").ParamName);
        using DaxDevice dax = Emulated();
        DaxRangeAllocator labels = DaxRangeAllocator.Format(dax);
        Assert.Equal("name", Assert.Throws<ArgumentNullException>(() => labels.Get(null!)).ParamName);
        Assert.Equal("name", Assert.Throws<ArgumentNullException>(() => labels.Allocate(null!, Mib2)).ParamName);
        Assert.Equal("name", Assert.Throws<ArgumentNullException>(() => labels.Map(null!)).ParamName);
        Assert.Equal("name", Assert.Throws<ArgumentNullException>(() => labels.Free(null!)).ParamName);
        labels.Dispose();
        labels.Dispose();
        Assert.Throws<ObjectDisposedException>(() => labels.Get("x"));
        Assert.Throws<ObjectDisposedException>(() => labels.AllocateAt("x", Mib2, Mib2));
    }

    [Fact]
    public void ADeviceTooSmallForLabelsIsNamedWithItsSize()
    {
        using DaxDevice dax = Emulated(size: Mib2);
        var error = Refused<DaxLabelException>(() => DaxRangeAllocator.Format(dax), "2097152", dax.DevicePath);
        Assert.Equal(DaxLabelRule.OutOfBounds, error.Rule);
        Refused<DaxLabelException>(() => DaxRangeAllocator.Open(dax), "2097152");
    }

    [Fact]
    public void RequestsNameTheBadLengthOffsetPageSizeAndName()
    {
        using DaxDevice dax = Emulated();
        using DaxRangeAllocator labels = DaxRangeAllocator.Format(dax);
        Refused<DaxLabelException>(() => labels.Allocate("odd", Mib2 + 4096), "2101248", "'odd'");
        Refused<DaxLabelException>(() => labels.Allocate("neg", -Mib2), "-2097152");
        Refused<DaxLabelException>(() => labels.Allocate("small", Mib2, PageSize.Pte), "4096", "'small'");
        Refused<DaxLabelException>(() => labels.Allocate("huge", 1L << 30, PageSize.Pud), "'huge'");
        Refused<DaxLabelException>(() => labels.AllocateAt("at", Mib2 + 4096, Mib2), "0x201000", "'at'");
        Refused<DaxLabelException>(() => labels.AllocateAt("in-labels", 0, Mib2), "0x0");
        Refused<DaxLabelException>(() => labels.AllocateAt("past", 16 * Mib2, Mib2), "0x2000000");
        Refused<DaxLabelException>(() => labels.Allocate(new string('x', 33), Mib2), "33 bytes");
        Refused<DaxLabelException>(() => labels.Get("absent"), "'absent'", dax.DevicePath);
        Refused<DaxLabelException>(() => labels.Free("absent"), "'absent'");
        Refused<DaxLabelException>(() => labels.Map("absent"), "'absent'");
        labels.Allocate("r", 4 * Mib2);
        Assert.Equal("Offset", Refused<ArgumentException>(() => labels.Map("r", new() { Offset = 4096 }), "0x1000").ParamName);
        Refused<ArgumentOutOfRangeException>(() => labels.Map("r", new() { Offset = 4 * Mib2, Length = Mib2 }), "0x800000");
        Assert.DoesNotContain(labels.Ranges, r => r.Name != "r");
    }

    // Lone surrogates cannot travel through attribute metadata (it stores UTF-8): they are appended here.
    [Theory]
    [InlineData("lone", 0xD800, "surrogate")]
    [InlineData("", 0xDFFF, "surrogate")]
    [InlineData("a\0", -1, "NUL")]
    [InlineData("", -1, "1 to 32")]
    [InlineData("ééééééééééééééééé", -1, "34 bytes")] // 17 chars, 34 bytes
    public void NamesThatWouldNotReadBackTheSameAreRefused(string prefix, int surrogate, string reason)
    {
        string name = surrogate < 0 ? prefix : prefix + (char)surrogate + "x";
        using DaxDevice dax = Emulated();
        using DaxRangeAllocator labels = DaxRangeAllocator.Format(dax);
        var error = Refused<DaxLabelException>(() => labels.Allocate(name, Mib2), reason);
        Assert.Equal(DaxLabelRule.BadName, error.Rule);
        Assert.Equal(1UL, labels.Sequence);
        // A 32-byte name of multi-byte characters and one with a surrogate pair are fine and read back equal.
        labels.Allocate("éééééééééééééééé", Mib2);
        labels.Allocate("pair-\ud83d\ude00", Mib2);
        labels.Dispose();
        using DaxRangeAllocator reopened = DaxRangeAllocator.Open(dax);
        Assert.Equal(["éééééééééééééééé", "pair-\ud83d\ude00"], reopened.Ranges.Select(r => r.Name));
    }

    [Fact]
    public void FreeOfARangeThatIsStillMappedIsRefusedUntilTheMappingIsDisposed()
    {
        using DaxDevice dax = Emulated();
        using DaxRangeAllocator labels = DaxRangeAllocator.Format(dax);
        DaxAllocation first = labels.Allocate("first", Mib2);
        DaxMapping map = labels.Map("first");
        DaxMapping second = labels.Map("first", new() { ReadOnly = true });
        var error = Refused<DaxLabelException>(() => labels.Free("first"), "'first'", "2 mapping(s)");
        Assert.Equal(DaxLabelRule.RangeInUse, error.Rule);
        map.Dispose();
        Refused<DaxLabelException>(() => labels.Free("first"), "1 mapping(s)");
        Assert.Equal(first, labels.Get("first"));
        second.Dispose();
        labels.Free("first");
        // The bytes are handed out again only now that no mapping reaches them.
        Assert.Equal(first.Offset, labels.Allocate("next", Mib2).Offset);
    }

    [Fact]
    public void AReadOnlyDeviceOpensItsAllocatorReadOnlyAndChangesAreRefusedWithWhatToDo()
    {
        string path = _temp.File("dev.emu");
        using (DaxDevice dax = Emulated())
        using (DaxRangeAllocator labels = DaxRangeAllocator.Format(dax))
        {
            labels.Allocate("data", Mib2);
            using DaxMapping map = labels.Map("data");
            map.Publish(0, 0xC0FFEE);
        }
        using DaxDevice readOnly = DaxDevice.OpenEmulated(path, writable: false);
        var formatError = Refused<ArgumentException>(() => DaxRangeAllocator.Format(readOnly), path, "OpenReadOnly");
        Assert.Equal("device", formatError.ParamName);
        Refused<ArgumentException>(() => DaxRangeAllocator.Open(readOnly), path, "OpenReadOnly", "writable: true");

        using DaxRangeAllocator reader = DaxRangeAllocator.OpenReadOnly(readOnly);
        Assert.True(reader.IsReadOnly);
        Assert.Equal("data", Assert.Single(reader.Ranges).Name);
        using (DaxMapping view = reader.Map("data", new() { ReadOnly = true }))
        {
            Assert.Equal(0xC0FFEEUL, view.GetReadOnlyRef<ulong>(0));
        }
        Refused<InvalidOperationException>(() => reader.Allocate("more", Mib2), path, "read-only");
        Refused<InvalidOperationException>(() => reader.AllocateAt("more", 4 * Mib2, Mib2), "read-only");
        Refused<InvalidOperationException>(() => reader.Free("data"), "read-only");
        Assert.Equal(2UL, reader.Sequence);
    }

    [Fact]
    public void AWritableAllocatorExcludesEveryOtherAllocatorOnTheDevice()
    {
        using DaxDevice dax = Emulated();
        using DaxRangeAllocator writer = DaxRangeAllocator.Format(dax);
        Refused<PmemInUseException>(() => DaxRangeAllocator.OpenReadOnly(dax), dax.DevicePath, "writable");
        Refused<PmemInUseException>(() => DaxRangeAllocator.Open(dax), dax.DevicePath, "writable");
    }

    [Fact]
    public void ReadOnlyAllocatorsCoexistOnOneDeviceAndKeepAWriterOutUntilTheLastIsDisposed()
    {
        using DaxDevice dax = Emulated();
        using (DaxRangeAllocator writer = DaxRangeAllocator.Format(dax))
        {
            writer.Allocate("data", Mib2);
        }
        DaxRangeAllocator first = DaxRangeAllocator.OpenReadOnly(dax);
        DaxRangeAllocator second = DaxRangeAllocator.OpenReadOnly(dax);
        Assert.Equal("data", Assert.Single(first.Ranges).Name);
        Assert.Equal(first.Ranges, second.Ranges);
        using (DaxMapping a = first.Map("data", new() { ReadOnly = true }))
        using (DaxMapping b = second.Map("data", new() { ReadOnly = true }))
        {
            Assert.Equal(a.Length, b.Length);
        }
        Refused<PmemInUseException>(() => DaxRangeAllocator.Open(dax), dax.DevicePath, "2 read-only");
        first.Dispose();
        Refused<PmemInUseException>(() => DaxRangeAllocator.Open(dax), dax.DevicePath, "1 read-only");
        second.Dispose();
        second.Dispose(); // twice gives nothing back twice
        using DaxRangeAllocator again = DaxRangeAllocator.Open(dax);
        Refused<PmemInUseException>(() => DaxRangeAllocator.OpenReadOnly(dax), dax.DevicePath, "writable");
    }

    [Fact]
    public void ReadOnlyAllocatorsCoexistAcrossDeviceInstancesOpenedReadOnly()
    {
        string path;
        using (DaxDevice dax = Emulated())
        {
            path = dax.DevicePath;
            using DaxRangeAllocator writer = DaxRangeAllocator.Format(dax);
            writer.Allocate("data", Mib2);
        }
        using DaxDevice one = DaxDevice.OpenEmulated(path, writable: false);
        using DaxDevice two = DaxDevice.OpenEmulated(path, writable: false);
        using DaxRangeAllocator a = DaxRangeAllocator.OpenReadOnly(one);
        using DaxRangeAllocator b = DaxRangeAllocator.OpenReadOnly(two);
        using DaxRangeAllocator c = DaxRangeAllocator.OpenReadOnly(two);
        Assert.Equal(a.Ranges, c.Ranges);
    }

    [Fact]
    public void AnAllocatorRefusesUseAfterItsDeviceIsDisposedNamingTheDeviceAndItsMappingsStayValid()
    {
        DaxDevice dax = Emulated();
        DaxRangeAllocator allocator = DaxRangeAllocator.Format(dax);
        allocator.Allocate("data", Mib2);
        DaxMapping mapped = allocator.Map("data");
        DaxMapping whole = dax.Map();
        dax.Dispose();

        void Gone(Action action)
        {
            var error = Assert.Throws<ObjectDisposedException>(action);
            Assert.Equal(nameof(DaxDevice), error.ObjectName);
            Assert.Contains(dax.DevicePath, error.Message, StringComparison.Ordinal);
        }
        Gone(() => allocator.Map("data"));
        Gone(() => allocator.Get("data"));
        Gone(() => allocator.Allocate("more", Mib2));
        Gone(() => allocator.AllocateAt("more", 4 * Mib2, Mib2));
        Gone(() => allocator.Free("data"));
        Gone(() => _ = allocator.Ranges);
        Gone(() => dax.Map());
        Gone(() => dax.MapRaw());
        Gone(() => DaxRangeAllocator.OpenReadOnly(dax));
        dax.Dispose(); // twice is fine

        // What was mapped before stays mapped until disposed itself.
        mapped.Publish(0, 0xFEED);
        Assert.Equal(0xFEEDUL, mapped.GetReadOnlyRef<ulong>(0));
        whole.Publish(0, 0xBEEF);
        Assert.Equal(0xBEEFUL, whole.GetReadOnlyRef<ulong>(0));
        mapped.Dispose();
        whole.Dispose();
        allocator.Dispose();

        // The labels were written before the device went: a new device and allocator find them.
        using DaxDevice reopened = DaxDevice.OpenEmulated(_temp.File("dev.emu"));
        using DaxRangeAllocator back = DaxRangeAllocator.Open(reopened);
        Assert.Equal("data", Assert.Single(back.Ranges).Name);
    }
}
