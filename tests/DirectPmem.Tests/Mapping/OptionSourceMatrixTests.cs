using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Persistence;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Mapping;

/// <summary>
/// Issue 10, item 1: every <see cref="DaxMappingOptions"/> field, for every source, is honoured (its
/// effect is observed on the mapping) or refused with a typed error naming it, never dropped.
/// Sources: anonymous memory, a memfd, a hugetlb memfd, a tmpfs file, a page-cache file, a hugetlbfs
/// file, emulated devices on a page-cache file, a memfd, a hugetlb memfd and hugetlbfs, and an
/// allocator range on each emulated device. (Device nodes are checked against the sysfs fixture in
/// SysfsDiscoveryTests and on a real kernel in the integration tier; the simulated device in
/// DirectPmem.Testing.Tests.)
/// </summary>
[Collection(HugetlbGroup.Name)]
public sealed class OptionSourceMatrixTests
{
    private const long Mib2 = 2L << 20;

    public static readonly string[] Sources =
    [
        "anonymous", "memfd", "memfd-hugetlb", "tmpfs-file", "pagecache-file", "hugetlbfs-file",
        "emulated-pagecache", "emulated-memfd", "emulated-memfd-hugetlb", "emulated-hugetlbfs",
        "range-pagecache", "range-memfd", "range-memfd-hugetlb", "range-hugetlbfs",
    ];

    public static readonly string[] Options =
    [
        "default", "offset", "length", "pagesize-pte", "pagesize-pmd", "require-pmd", "populate", "lock", "readonly",
        "hugepages-none", "hugepages-transparent", "hugepages-hugetlb",
        "required-none", "required-page", "required-cacheline", "required-byte", "force-cacheline",
    ];

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (string source in Sources)
        {
            foreach (string option in Options)
            {
                data.Add(source, option);
            }
        }
        return data;
    }

    /// <summary>What a source is, for the expected outcome.</summary>
    private sealed class Source : IDisposable
    {
        public required Func<DaxMappingOptions, DaxMapping> Map { get; init; }

        public required List<IDisposable> Owned { get; init; }

        /// <summary>Volatile shared memory that takes MADV_HUGEPAGE (anonymous, memfd, tmpfs).</summary>
        public bool Shmem { get; init; }

        public bool Hugetlb { get; init; }

        public bool PageCache { get; init; }

        public bool Anonymous { get; init; }

        /// <summary>The smallest page size (device align for emulated sources).</summary>
        public PageSize Minimum { get; init; } = PageSize.Pte;

        /// <summary>The source offset of the window's first byte.</summary>
        public long WindowOffset { get; init; }

        public void Dispose()
        {
            for (int i = Owned.Count - 1; i >= 0; i--)
            {
                Owned[i].Dispose();
            }
        }
    }

    private static Source Open(string name)
    {
        var owned = new List<IDisposable>();
        try
        {
            bool hugetlb = name.Contains("hugetlb", StringComparison.Ordinal);
            if (hugetlb)
            {
                HugetlbReservation? reservation = HugetlbReservation.TryReserve(12, out string reason);
                if (reservation is null)
                {
                    Assert.Skip(reason);
                }
                owned.Add(reservation);
            }
            string[] parts = name.Split('-', 2);
            switch (name)
            {
                case "anonymous":
                    return new Source
                    {
                        Owned = owned, Shmem = true, Anonymous = true,
                        // The length argument is the Length option (anonymous memory has no size of its own).
                        Map = o => DaxMapping.CreateAnonymous(o.Length ?? 4 * Mib2, o),
                    };
                case "memfd":
                case "memfd-hugetlb":
                {
                    PmemFile memfd = PmemFile.CreateMemory("matrix", 4 * Mib2, hugetlb ? HugePages.Hugetlb : HugePages.None);
                    owned.Add(memfd);
                    return new Source { Owned = owned, Shmem = !hugetlb, Hugetlb = hugetlb, Minimum = memfd.MinimumPageSize, Map = memfd.Map };
                }
                case "tmpfs-file":
                {
                    if (!Directory.Exists("/dev/shm"))
                    {
                        Assert.Skip("no /dev/shm tmpfs on this machine");
                    }
                    var dir = new TempDirectory("/dev/shm");
                    owned.Add(dir);
                    PmemFile file = PmemFile.Create(dir.File("f"), 4 * Mib2);
                    owned.Add(file);
                    Assert.Equal(MappingBacking.SharedMemory, file.Backing);
                    return new Source { Owned = owned, Shmem = true, Map = file.Map };
                }
                case "pagecache-file":
                {
                    TempDirectory dir = PageCacheDirectory.Create();
                    owned.Add(dir);
                    PmemFile file = PmemFile.Create(dir.File("f"), 4 * Mib2);
                    owned.Add(file);
                    return new Source { Owned = owned, PageCache = true, Map = file.Map };
                }
                case "hugetlbfs-file":
                {
                    PmemFile file = PmemFile.Create(HugetlbfsDirectory(owned).File("f"), 4 * Mib2);
                    owned.Add(file);
                    return new Source { Owned = owned, Hugetlb = true, Minimum = PageSize.Pmd, Map = file.Map };
                }
            }

            // Emulated devices (align 2 MiB, 8 MiB) and a 4 MiB allocator range on each.
            string backing = parts[1];
            DaxDevice device = backing switch
            {
                "pagecache" => DaxDevice.CreateEmulated(Owned(owned, PageCacheDirectory.Create()).File("dev"), 8 * Mib2, PageSize.Pmd),
                "memfd" => DaxDevice.CreateEmulatedMemory("matrix", 8 * Mib2, PageSize.Pmd),
                "memfd-hugetlb" => DaxDevice.CreateEmulatedMemory("matrix", 8 * Mib2, PageSize.Pmd, HugePages.Hugetlb),
                "hugetlbfs" => DaxDevice.CreateEmulated(HugetlbfsDirectory(owned).File("dev"), 8 * Mib2, PageSize.Pmd),
                _ => throw new ArgumentException(name),
            };
            owned.Add(device);
            var source = new Source
            {
                Owned = owned, Shmem = backing == "memfd", Hugetlb = hugetlb, PageCache = backing == "pagecache",
                Minimum = PageSize.Pmd, Map = device.Map,
            };
            if (parts[0] == "emulated")
            {
                return source;
            }
            DaxRangeAllocator allocator = DaxRangeAllocator.Format(device);
            owned.Add(allocator);
            DaxAllocation range = allocator.Allocate("r", 2 * Mib2);
            Assert.Equal(2 * Mib2, range.Length);
            return new Source
            {
                Owned = owned, Shmem = source.Shmem, Hugetlb = hugetlb, PageCache = source.PageCache, Minimum = PageSize.Pmd,
                WindowOffset = range.Offset, Map = o => allocator.Map("r", o),
            };
        }
        catch
        {
            for (int i = owned.Count - 1; i >= 0; i--)
            {
                owned[i].Dispose();
            }
            throw;
        }
    }

    private static T Owned<T>(List<IDisposable> owned, T item) where T : IDisposable
    {
        owned.Add(item);
        return item;
    }

    private static TempDirectory HugetlbfsDirectory(List<IDisposable> owned)
    {
        HugetlbfsMount? mount = HugetlbfsMount.TryMount(out string reason);
        if (mount is null)
        {
            Assert.Skip(reason);
        }
        owned.Add(mount);
        return Owned(owned, new TempDirectory(mount.Path));
    }

    private static DaxMappingOptions OptionsFor(string option, Source source) => option switch
    {
        "default" => new DaxMappingOptions(),
        "offset" => new DaxMappingOptions { Offset = (long)source.Minimum, Length = (long)source.Minimum },
        "length" => new DaxMappingOptions { Length = (long)source.Minimum },
        "pagesize-pte" => new DaxMappingOptions { PageSize = PageSize.Pte },
        "pagesize-pmd" => new DaxMappingOptions { PageSize = PageSize.Pmd },
        "require-pmd" => new DaxMappingOptions { PageSize = PageSize.Pmd, RequirePageSize = true },
        "populate" => new DaxMappingOptions { Populate = true },
        "lock" => new DaxMappingOptions { LockInMemory = true },
        "readonly" => new DaxMappingOptions { ReadOnly = true },
        "hugepages-none" => new DaxMappingOptions { HugePages = HugePages.None },
        "hugepages-transparent" => new DaxMappingOptions { HugePages = HugePages.Transparent },
        "hugepages-hugetlb" => new DaxMappingOptions { HugePages = HugePages.Hugetlb },
        "required-none" => new DaxMappingOptions { RequiredGranularity = PersistGranularity.None },
        "required-page" => new DaxMappingOptions { RequiredGranularity = PersistGranularity.Page },
        "required-cacheline" => new DaxMappingOptions { RequiredGranularity = PersistGranularity.CacheLine },
        "required-byte" => new DaxMappingOptions { RequiredGranularity = PersistGranularity.Byte },
        "force-cacheline" => new DaxMappingOptions { ForceCacheLineGranularity = true },
        _ => throw new ArgumentException(option),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void EveryOptionIsHonouredOrRefusedForEverySource(string sourceName, string option)
    {
        using Source source = Open(sourceName);
        DaxMappingOptions options = OptionsFor(option, source);
        PersistGranularity natural = source.PageCache ? PersistGranularity.Page : PersistGranularity.None;
        if (PersistenceSettings.Current.ForceGranularity is PersistGranularity forced)
        {
            natural = forced;
        }

        // The refusals the rules call for, with the exception type and the option the message names.
        (Type Type, string Names)? refusal = option switch
        {
            "offset" when source.Anonymous => (typeof(ArgumentOutOfRangeException), "Offset"),
            "pagesize-pte" when source.Minimum > PageSize.Pte => (typeof(ArgumentException), "smaller than"),
            "require-pmd" when !source.Hugetlb => (typeof(PmemCapabilityException), "2 MiB"),
            "hugepages-transparent" when !source.Shmem => (typeof(ArgumentException), "HugePages = Transparent"),
            "hugepages-hugetlb" when !source.Hugetlb && !source.Anonymous => (typeof(ArgumentException), "HugePages = Hugetlb"),
            "required-page" or "required-cacheline" or "required-byte" when !natural.IsAtLeastAsFineAs(options.RequiredGranularity!.Value)
                => (typeof(PmemCapabilityException), "granularity"),
            _ => null,
        };
        if (option == "hugepages-hugetlb" && source.Anonymous)
        {
            // Anonymous hugetlb memory needs reserved pages: take them for this case.
            using HugetlbReservation? reservation = HugetlbReservation.TryReserve(4, out string reason);
            if (reservation is null)
            {
                Assert.Skip(reason);
            }
            using DaxMapping huge = source.Map(options);
            Assert.Equal(MappingBacking.Hugetlb, huge.Backing);
            Assert.Equal(Mib2, huge.ObservePageSize().KernelPageSize);
            return;
        }
        if (refusal is (Type type, string names))
        {
            Exception e = Assert.ThrowsAny<Exception>(() => source.Map(options).Dispose());
            Assert.IsType(type, e);
            Assert.Contains(names, e.Message, StringComparison.Ordinal);
            return;
        }

        using DaxMapping map = source.Map(options);
        PageSize expectedPageSize = options.PageSize ?? source.Minimum;
        Assert.Equal(expectedPageSize, map.PageSize);
        Assert.Equal(0, map.AddressOf() % (long)map.PageSize);
        Assert.True(map.ObservePageSize().DontFork);
        Assert.Equal(source.WindowOffset + options.Offset, map.SourceOffset);
        if (options.Length is long length)
        {
            Assert.Equal(length, map.Length);
        }
        Assert.Equal(options.ReadOnly, map.IsReadOnly);
        if (options.ReadOnly)
        {
            Assert.Throws<InvalidOperationException>(() => map.GetSpan(0, 1));
        }
        else
        {
            // The mapping is usable and durable as its granularity says.
            map.Write([1, 2, 3, 4, 5, 6, 7, 8], 0);
            map.Persist(0, 8);
        }
        PageSizeObservation seen = map.ObservePageSize();
        switch (option)
        {
            case "require-pmd":
                Assert.Equal(PageSize.Pmd, seen.ObservedPageSize);
                break;
            case "populate":
                // Kernels differ on whether Rss counts hugetlb pages; HugetlbBytes always does.
                Assert.Equal(map.Length, source.Hugetlb ? seen.HugetlbBytes : seen.Rss);
                break;
            case "lock":
                // mlock succeeded; the kernel marks no hugetlb VMA VM_LOCKED (hugetlb pages are never swapped).
                if (!source.Hugetlb)
                {
                    Assert.Contains("lo", seen.VmFlags.Split(' '));
                }
                break;
            case "hugepages-transparent":
                Assert.Contains("hg", seen.VmFlags.Split(' '));
                break;
            case "hugepages-hugetlb":
                Assert.Equal(Mib2, seen.KernelPageSize);
                break;
            case "force-cacheline":
                Assert.Equal(PersistGranularity.CacheLine, map.Granularity);
                break;
        }
        if (source.Hugetlb)
        {
            Assert.Equal(Mib2, seen.KernelPageSize);
        }
        if (option != "force-cacheline")
        {
            Assert.Equal(natural, map.Granularity);
        }
        if (options.RequiredGranularity is PersistGranularity required)
        {
            Assert.True(map.Granularity.IsAtLeastAsFineAs(required));
        }
    }
}

/// <summary>
/// The device-node source of the option matrix, on the sysfs fixture (dax0.0: 2 MiB align): every
/// option is validated before mmap, so the request is checked without a device; mapping a real
/// device is the integration tier's.
/// </summary>
public sealed class DeviceNodeOptionTests
{
    private const long Mib2 = 2L << 20;
    private static readonly DaxBus s_bus = new(Fixtures.FixturePaths.Sysfs("good"));

    private static DaxDevice.MapPlan Plan(DaxMappingOptions options)
    {
        DaxDevice dax = s_bus.GetDevice("dax0.0");
        return dax.Plan(0, dax.Size, dax.Align, options, "'" + dax.DevicePath + "'");
    }

    [Fact]
    public void EveryOptionIsHonouredOrRefusedForADeviceNode()
    {
        Assert.Equal(Mib2, Plan(new DaxMappingOptions { Offset = Mib2, Length = Mib2 }).DeviceOffset);
        Assert.Equal(Mib2, Plan(new DaxMappingOptions { Length = Mib2 }).Length);
        Assert.Equal(PageSize.Pmd, Plan(new DaxMappingOptions { PageSize = PageSize.Pmd }).PageSize);
        Assert.Throws<ArgumentException>(() => Plan(new DaxMappingOptions { PageSize = PageSize.Pte }));
        Assert.Equal(PageSize.Pmd, Plan(new DaxMappingOptions { RequirePageSize = true }).PageSize);
        foreach (DaxMappingOptions honoured in new DaxMappingOptions[]
        {
            new() { Populate = true }, new() { LockInMemory = true }, new() { ReadOnly = true }, new() { HugePages = HugePages.None },
            new() { RequiredGranularity = PersistGranularity.None }, new() { ForceCacheLineGranularity = true },
        })
        {
            Assert.Equal(DirectPmem.Interop.Libc.MAP_SHARED_VALIDATE | DirectPmem.Interop.Libc.MAP_SYNC, Plan(honoured).ExtraFlags);
        }
        var transparent = Assert.Throws<ArgumentException>(() => Plan(new DaxMappingOptions { HugePages = HugePages.Transparent }));
        Assert.Contains("HugePages = Transparent", transparent.Message, StringComparison.Ordinal);
        var hugetlb = Assert.Throws<ArgumentException>(() => Plan(new DaxMappingOptions { HugePages = HugePages.Hugetlb }));
        Assert.Contains("HugePages = Hugetlb", hugetlb.Message, StringComparison.Ordinal);

        // Device-DAX is cache-line without eADR, byte under eADR: Page and CacheLine are met; Byte only under eADR.
        PersistGranularity natural = PersistencePlatform.Natural(DurabilityClass.DeviceDax);
        if (natural == PersistGranularity.Page)
        {
            Assert.Throws<PmemCapabilityException>(() => Plan(new DaxMappingOptions()));
            return;
        }
        Plan(new DaxMappingOptions { RequiredGranularity = PersistGranularity.Page });
        Plan(new DaxMappingOptions { RequiredGranularity = PersistGranularity.CacheLine });
        if (natural == PersistGranularity.Byte)
        {
            Plan(new DaxMappingOptions { RequiredGranularity = PersistGranularity.Byte });
        }
        else
        {
            var e = Assert.Throws<PmemCapabilityException>(() => Plan(new DaxMappingOptions { RequiredGranularity = PersistGranularity.Byte }));
            Assert.Contains("/dev/dax0.0", e.Message, StringComparison.Ordinal);
        }
    }
}
