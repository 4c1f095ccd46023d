using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Tests.Fixtures;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Driver;

/// <summary>Reserves 2 MiB hugetlb pages for each test (as root) and gives them back afterwards.</summary>
[Collection(HugetlbGroup.Name)]
public sealed class HugetlbEmulationTests
{
    private const long Mib2 = 2 * 1024 * 1024;

    [Fact]
    public void AnEmulatedDeviceOnAHugetlbMemfdReallyFaultsInTwoMegabytePages()
    {
        // 2 MiB of data plus one 2 MiB descriptor page.
        using HugetlbReservation pages = Reserve(2);
        using DaxDevice dax = DaxDevice.CreateEmulatedMemory("driver-hugetlb-reserved", Mib2, PageSize.Pmd, HugePages.Hugetlb);
        Assert.Equal(MappingBacking.Hugetlb, dax.Backing);
        Assert.Equal(PageSize.Pmd, dax.FaultGranularity);
        Assert.Equal(DaxPersistence.Volatile, dax.Persistence);
        using DaxMapping map = dax.Map(new DaxMappingOptions { RequirePageSize = true, Populate = true });
        PageSizeObservation seen = map.ObservePageSize();
        Assert.Equal(PageSize.Pmd, seen.ObservedPageSize);
        Assert.Equal(Mib2, seen.KernelPageSize);
        Assert.True(seen.DontFork);
    }

    [Fact]
    public void AnEmulatedDeviceOnHugetlbfsReopensAndFaultsInTwoMegabytePages()
    {
        using HugetlbfsMount? mount = HugetlbfsMount.TryMount(out string reason);
        if (mount is null)
        {
            Assert.Skip(reason);
        }
        using HugetlbReservation pages = Reserve(3);
        string path = Path.Combine(mount.Path, "dpmem-driver-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (DaxDevice created = DaxDevice.CreateEmulated(path, 2 * Mib2, PageSize.Pmd))
            {
                Assert.Equal(MappingBacking.Hugetlb, created.Backing);
                Assert.Equal(PageSize.Pmd, created.FaultGranularity);
                using DaxMapping map = created.Map(new DaxMappingOptions { Length = Mib2, RequirePageSize = true, Populate = true });
                Assert.Equal(PageSize.Pmd, map.ObservePageSize().ObservedPageSize);
                map.GetRef<long>(0) = 77;
            }
            Assert.Equal(3 * Mib2, new FileInfo(path).Length);
            using DaxDevice reopened = DaxDevice.OpenEmulated(path, align: PageSize.Pmd);
            Assert.Equal(2 * Mib2, reopened.Size);
            using DaxMapping again = reopened.Map(new DaxMappingOptions { Length = Mib2 });
            Assert.Equal(77, again.GetReadOnlyRef<long>(0));
            Assert.Throws<ArgumentException>(() => DaxDevice.CreateEmulated(path + "-4k", 4096 * 4, PageSize.Pte));
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static HugetlbReservation Reserve(long pages)
    {
        HugetlbReservation? reservation = HugetlbReservation.TryReserve(pages, out string reason);
        if (reservation is null)
        {
            Assert.Skip(reason);
        }
        return reservation;
    }
}
