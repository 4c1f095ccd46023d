using System.Globalization;
using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Tests.Fixtures;
using Xunit;

namespace DirectPmem.Tests.Driver;

[CollectionDefinition("Driver hugetlb reservation", DisableParallelization = true)]
public sealed class DriverHugetlbReservationGroup
{
}

/// <summary>Reserves 2 MiB hugetlb pages for each test (as root) and gives them back afterwards.</summary>
[Collection("Driver hugetlb reservation")]
public sealed class HugetlbEmulationTests
{
    private const long Mib2 = 2 * 1024 * 1024;

    [Fact]
    public void AnEmulatedDeviceOnAHugetlbMemfdReallyFaultsInTwoMegabytePages()
    {
        // 2 MiB of data plus one 2 MiB descriptor page.
        using var pages = HugePageReservation.Ensure(2);
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
        string? mount = FindHugetlbfsMount();
        if (mount is null)
        {
            Assert.Skip("no writable hugetlbfs mount with 2 MiB pages in /proc/mounts.");
        }
        using var pages = HugePageReservation.Ensure(3);
        string path = Path.Combine(mount, "dpmem-driver-" + Guid.NewGuid().ToString("N"));
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

    private static string? FindHugetlbfsMount()
    {
        foreach (string line in File.ReadLines("/proc/mounts"))
        {
            string[] f = line.Split(' ');
            if (f.Length > 3 && f[2] == "hugetlbfs" && !f[3].Contains("pagesize=1G", StringComparison.Ordinal) && f[3].StartsWith("rw", StringComparison.Ordinal))
            {
                return f[1];
            }
        }
        return null;
    }

    /// <summary>Raises nr_hugepages so that <c>count</c> pages are free, and restores it on dispose; skips the test when it cannot.</summary>
    private sealed class HugePageReservation : IDisposable
    {
        private const string NrHugepages = "/proc/sys/vm/nr_hugepages";
        private readonly string? _original;

        private HugePageReservation(string? original) => _original = original;

        public static HugePageReservation Ensure(long count)
        {
            long needed = count - FreeHugePages();
            if (needed <= 0)
            {
                return new HugePageReservation(null);
            }
            string original = File.ReadAllText(NrHugepages).Trim();
            long total = long.Parse(original, CultureInfo.InvariantCulture);
            try
            {
                File.WriteAllText(NrHugepages, (total + needed).ToString(CultureInfo.InvariantCulture));
            }
            catch (UnauthorizedAccessException)
            {
                Assert.Skip($"{NrHugepages} is not writable and {FreeHugePages()} 2 MiB pages are free; {count} are needed.");
            }
            var reservation = new HugePageReservation(original);
            if (FreeHugePages() < count)
            {
                reservation.Dispose();
                Assert.Skip($"the kernel could not reserve {count} free 2 MiB hugetlb pages (memory fragmented?).");
            }
            return reservation;
        }

        public void Dispose()
        {
            if (_original is not null)
            {
                File.WriteAllText(NrHugepages, _original);
            }
        }

        private static long FreeHugePages()
        {
            foreach (string line in File.ReadLines("/proc/meminfo"))
            {
                if (line.StartsWith("HugePages_Free:", StringComparison.Ordinal))
                {
                    return long.Parse(line["HugePages_Free:".Length..].Trim(), CultureInfo.InvariantCulture);
                }
            }
            return 0;
        }
    }
}
