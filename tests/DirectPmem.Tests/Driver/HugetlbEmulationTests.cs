using System.Globalization;
using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using Xunit;

namespace DirectPmem.Tests.Driver;

[CollectionDefinition("Driver hugetlb reservation", DisableParallelization = true)]
public sealed class DriverHugetlbReservationGroup
{
}

/// <summary>Reserves 2 MiB hugetlb pages for the test (as root) and gives them back afterwards.</summary>
[Collection("Driver hugetlb reservation")]
public sealed class HugetlbEmulationTests
{
    private const long Mib2 = 2 * 1024 * 1024;
    private const string NrHugepages = "/proc/sys/vm/nr_hugepages";

    [Fact]
    public void AnEmulatedDeviceOnAHugetlbMemfdReallyFaultsInTwoMegabytePages()
    {
        string original = File.ReadAllText(NrHugepages).Trim();
        long total = long.Parse(original, CultureInfo.InvariantCulture);
        bool raised = false;
        try
        {
            // 2 MiB of data plus one 2 MiB descriptor page.
            long needed = 2 - FreeHugePages();
            if (needed > 0)
            {
                try
                {
                    File.WriteAllText(NrHugepages, (total + needed).ToString(CultureInfo.InvariantCulture));
                    raised = true;
                }
                catch (UnauthorizedAccessException)
                {
                    Assert.Skip($"{NrHugepages} is not writable and {FreeHugePages()} 2 MiB pages are free; 2 are needed.");
                }
                if (FreeHugePages() < 2)
                {
                    Assert.Skip("the kernel could not reserve 2 free 2 MiB hugetlb pages (memory fragmented?).");
                }
            }

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
        finally
        {
            if (raised)
            {
                File.WriteAllText(NrHugepages, original);
            }
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
