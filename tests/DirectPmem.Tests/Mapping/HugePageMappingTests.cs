using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Mapping;

[Collection(HugetlbGroup.Name)]
public sealed class HugePageMappingTests
{
    private const long Mib2 = 2 * 1024 * 1024;

    [Fact]
    public void AnAnonymousMappingWithoutHugePagesIsBackedBy4KiBPages()
    {
        using DaxMapping map = DaxMapping.CreateAnonymous(4 * Mib2, new DaxMappingOptions { Populate = true });
        PageSizeObservation seen = map.ObservePageSize();
        Assert.Equal(MappingBacking.Anonymous, map.Backing);
        Assert.Equal(4096, seen.KernelPageSize);
        Assert.Equal(4 * Mib2, seen.Rss);
        Assert.Equal(0, seen.HugetlbBytes);
        Assert.Equal(PageSize.Pte, seen.ObservedPageSize);
        Assert.True(seen.DontFork);
    }

    [Fact]
    public void ARequired2MiBHugetlbMappingReports2MiBObserved()
    {
        using HugetlbReservation? reservation = HugetlbReservation.TryReserve(4, out string reason);
        if (reservation is null)
        {
            Assert.Skip(reason);
        }
        using DaxMapping map = DaxMapping.CreateAnonymous(4 * Mib2,
            new DaxMappingOptions { HugePages = HugePages.Hugetlb, PageSize = PageSize.Pmd, RequirePageSize = true, Populate = true });
        PageSizeObservation seen = map.ObservePageSize();
        Assert.Equal(MappingBacking.Hugetlb, map.Backing);
        Assert.Equal(0, map.AddressOf() % Mib2);
        Assert.Equal(Mib2, seen.KernelPageSize);
        Assert.Equal(4 * Mib2, seen.HugetlbBytes);
        Assert.Equal(PageSize.Pmd, seen.ObservedPageSize);
        Assert.True(seen.DontFork);
        Assert.Contains("ht", seen.VmFlags.Split(' '));

        map.GetSpan(3 * Mib2, 8).Fill(0x5A);
        Assert.Equal(0x5A5A5A5A5A5A5A5A, map.GetReadOnlyRef<long>(3 * Mib2));
    }

    [Fact]
    public void AHugetlbMemfdIsBackedBy2MiBPagesInEveryMapping()
    {
        using HugetlbReservation? reservation = HugetlbReservation.TryReserve(2, out string reason);
        if (reservation is null)
        {
            Assert.Skip(reason);
        }
        using PmemFile memfd = PmemFile.CreateMemory("huge", 2 * Mib2, HugePages.Hugetlb);
        Assert.Equal(PageSize.Pmd, memfd.MinimumPageSize);
        using DaxMapping a = memfd.Map(new DaxMappingOptions { RequirePageSize = true });
        using DaxMapping b = memfd.Map(new DaxMappingOptions { Offset = Mib2, Length = Mib2 });
        a.GetRef<long>(Mib2) = 42;
        Assert.Equal(42, b.GetReadOnlyRef<long>(0));
        Assert.Equal(PageSize.Pmd, a.ObservePageSize().ObservedPageSize);
        Assert.Equal(PageSize.Pmd, b.ObservePageSize().ObservedPageSize);
        Assert.Throws<ArgumentException>(() => memfd.Map(new DaxMappingOptions { PageSize = PageSize.Pte }));
        Assert.Throws<ArgumentException>(() => memfd.Map(new DaxMappingOptions { Offset = 4096, Length = Mib2 }));
    }

    [Fact]
    public void AHugetlbMappingWithNoPagesReservedIsRefusedWithHowToFixIt()
    {
        using HugetlbReservation? none = HugetlbReservation.TrySetTotal(0);
        if (none is null)
        {
            Assert.Skip("needs root to empty /proc/sys/vm/nr_hugepages for the test");
        }
        if (HugetlbReservation.FreePages() != 0)
        {
            Assert.Skip("hugetlb pages stay reserved (in use elsewhere); cannot observe the refusal");
        }
        var e = Assert.Throws<PmemCapabilityException>(() => DaxMapping.CreateAnonymous(Mib2,
            new DaxMappingOptions { HugePages = HugePages.Hugetlb, RequirePageSize = true }));
        Assert.Equal("ENOMEM", e.ErrnoName);
        Assert.Contains("nr_hugepages", e.Message, StringComparison.Ordinal);

        var f = Assert.Throws<PmemCapabilityException>(() => PmemFile.CreateMemory("none", Mib2, HugePages.Hugetlb));
        Assert.Contains("nr_hugepages", f.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RequiredTransparentHugePagesAreVerifiedNotAssumed()
    {
        // Shared anonymous memory is shmem: what the kernel does is shmem_enabled (and, on kernels
        // with per-size controls, hugepages-2048kB/shmem_enabled unless it says inherit).
        string setting = Selected("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
        string perSize = Selected("/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/shmem_enabled");
        if (perSize is not ("" or "inherit"))
        {
            setting = perSize;
        }
        var options = new DaxMappingOptions { HugePages = HugePages.Transparent, PageSize = PageSize.Pmd, RequirePageSize = true };
        if (setting is "never" or "deny" or "")
        {
            // With shmem THP off it can never be huge: refused, not downgraded.
            var e = Assert.Throws<PmemCapabilityException>(() => DaxMapping.CreateAnonymous(2 * Mib2, options));
            Assert.Contains("shmem_enabled", e.Message, StringComparison.Ordinal);
            Assert.Contains($"0 of {2 * Mib2} bytes", e.Message, StringComparison.Ordinal);
        }
        else
        {
            // always, within_size, advise (MADV_HUGEPAGE asks) or force: the kernel backs it with 2 MiB pages.
            using DaxMapping map = DaxMapping.CreateAnonymous(2 * Mib2, options);
            PageSizeObservation seen = map.ObservePageSize();
            Assert.Equal(PageSize.Pmd, seen.ObservedPageSize);
            Assert.Equal(2 * Mib2, seen.ShmemPmdMapped + seen.AnonHugePages);
        }
    }

    // The bracketed choice of a sysfs THP setting ("always [never] advise" -> "never"), or "" when absent.
    private static string Selected(string path)
    {
        if (!File.Exists(path))
        {
            return "";
        }
        string text = File.ReadAllText(path);
        int open = text.IndexOf('[', StringComparison.Ordinal);
        int close = text.IndexOf(']', StringComparison.Ordinal);
        return open >= 0 && close > open ? text[(open + 1)..close] : text.Trim();
    }

    [Fact]
    public void RequiringHugePagesWithoutAskingForThemIsRefused()
    {
        var e = Assert.Throws<PmemCapabilityException>(() => DaxMapping.CreateAnonymous(Mib2,
            new DaxMappingOptions { PageSize = PageSize.Pmd, RequirePageSize = true }));
        Assert.Contains("HugePages", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AFileOnHugetlbfsMapsIn2MiBPagesAndRefusesSmallerOnes()
    {
        using HugetlbfsMount? mount = HugetlbfsMount.TryMount(out string why);
        if (mount is null)
        {
            Assert.Skip(why);
        }
        using HugetlbReservation? reservation = HugetlbReservation.TryReserve(2, out string reason);
        if (reservation is null)
        {
            Assert.Skip(reason);
        }
        string path = System.IO.Path.Combine(mount.Path, "data-" + Guid.NewGuid().ToString("N"));
        string odd = path + "-odd";
        try
        {
            using (PmemFile file = PmemFile.Create(path, 2 * Mib2))
            {
                Assert.Equal(MappingBacking.Hugetlb, file.Backing);
                Assert.Equal(PageSize.Pmd, file.MinimumPageSize);
                using DaxMapping map = file.Map(new DaxMappingOptions { RequirePageSize = true, Populate = true });
                Assert.Equal(PageSize.Pmd, map.ObservePageSize().ObservedPageSize);
                Assert.Throws<ArgumentException>(() => file.Map(new DaxMappingOptions { PageSize = PageSize.Pte }));
            }
            Assert.Throws<ArgumentException>(() => PmemFile.Create(odd, Mib2 + 4096));
            Assert.False(File.Exists(odd));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
