using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Placement;
using DirectPmem.Tests.Fixtures;
using Xunit;

namespace DirectPmem.Tests.Placement;

/// <summary>
/// <see cref="TierPlacement"/> over the tiers fixture: dax0.0 NVDIMM on node0 (no HMAT), dax1.0 hmem
/// in system-ram mode on node2 (access0 250 ns), dax2.0 CXL ram on node3 (access1 190 ns), dax3.0 CXL
/// pmem on node4 (access1 380 ns); figures from initiator node0. The fixture has no device nodes:
/// the free space of its devdax devices is read from emulated devices of the same sizes through the
/// same allocator code (<see cref="TierPlacement.AllocatorFreeSpace"/>).
/// </summary>
public sealed class TierPlacementTests
{
    private static readonly DaxTopology s_topology = new DaxBus(FixturePaths.Sysfs("tiers")).Scan();

    [Fact]
    public void TheLowestLatencyPersistentDeviceIsTheOneWithFiguresBeforeTheOneWithout()
    {
        TierCandidate best = TierPlacement.Select(s_topology, new TierRequest { Persistence = DaxMemoryPersistence.Persistent, Initiator = 0 });
        Assert.Equal("dax3.0", best.Device.Name);
        Assert.Equal(380u, best.Performance?.ReadLatencyNanoseconds);
        Assert.Equal(1, best.Performance?.AccessClass);
        IReadOnlyList<TierCandidate> ranked = TierPlacement.Rank(s_topology, new TierRequest { Persistence = DaxMemoryPersistence.Persistent, Initiator = 0 });
        Assert.Equal(["dax3.0", "dax0.0"], ranked.Where(c => c.Matches).Select(c => c.Device.Name));
        Assert.All(ranked.Where(c => !c.Matches), c => Assert.Contains("Volatile memory, Persistent asked for", c.Rejection, StringComparison.Ordinal));
    }

    [Fact]
    public void TheLowestLatencyVolatileMemoryIsTheCxlRamRegionThenTheSystemRamNode()
    {
        IReadOnlyList<TierCandidate> ranked = TierPlacement.Rank(s_topology, new TierRequest { Persistence = DaxMemoryPersistence.Volatile, Initiator = 0 });
        Assert.Equal(["dax2.0", "dax1.0"], ranked.Where(c => c.Matches).Select(c => c.Device.Name));
        Assert.True(ranked[1].IsSystemRam);
        Assert.Equal(250u, ranked[1].Performance?.ReadLatencyNanoseconds);
    }

    [Fact]
    public void SystemRamCanBeExcludedAndKindNarrowsTheChoice()
    {
        TierCandidate cxlPmem = TierPlacement.Select(s_topology, new TierRequest { Kind = DaxMemoryKind.Cxl, Persistence = DaxMemoryPersistence.Persistent, Initiator = 0 });
        Assert.Equal("dax3.0", cxlPmem.Device.Name);
        IReadOnlyList<TierCandidate> noRam = TierPlacement.Rank(s_topology, new TierRequest { AllowSystemRam = false, Initiator = 0 });
        Assert.Equal("in system-ram mode, which the request excludes", noRam.Single(c => c.Device.Name == "dax1.0").Rejection);
    }

    [Fact]
    public void HighestBandwidthRanksByReadBandwidth()
    {
        IReadOnlyList<TierCandidate> ranked = TierPlacement.Rank(s_topology, new TierRequest { Prefer = TierPreference.HighestBandwidth, Initiator = 0 });
        uint?[] bandwidths = ranked.Where(c => c.Matches && c.Performance is not null).Select(c => c.Performance!.ReadBandwidthMBps).ToArray();
        Assert.NotEmpty(bandwidths);
        Assert.Equal(bandwidths.OrderDescending(), bandwidths);
        Assert.Null(ranked.Where(c => c.Matches).Last().Performance); // dax0.0's node has no HMAT: last
    }

    [Fact]
    public void AnInitiatorNoFigureIsFromHasNoPerformance()
    {
        TierCandidate c = TierPlacement.Rank(s_topology, new TierRequest { Initiator = 7 }).Single(c => c.Device.Name == "dax2.0");
        Assert.Null(c.Performance);
        Assert.True(c.Matches);
    }

    [Fact]
    public void ARequestNothingMeetsIsATypedErrorListingEveryDeviceAndWhy()
    {
        MemoryPlacementException e = Assert.Throws<MemoryPlacementException>(
            () => TierPlacement.Select(s_topology, new TierRequest { Persistence = DaxMemoryPersistence.Persistent, MinimumBytes = 1L << 50, Initiator = 0 }));
        Assert.Equal(MemoryPlacementFailure.NoMatchingMemory, e.Failure);
        Assert.Equal(4, e.Available.Count);
        Assert.StartsWith("no memory matches persistent memory of at least 1125899906842624 bytes, lowest latency from node0; there is: ", e.Message, StringComparison.Ordinal);
        Assert.Contains(e.Available, a => a.StartsWith("dax3.0 (Cxl, Persistent, devdax, node4", StringComparison.Ordinal) && a.EndsWith("at least 1125899906842624 asked for", StringComparison.Ordinal));
        Assert.Contains(e.Available, a => a.StartsWith("dax1.0 (SoftReserved, Volatile, system-ram, node2 memory_tier22", StringComparison.Ordinal));
    }

    [Fact]
    public void WithoutADeviceNodeTheWholeSizeIsCountedAndTheCandidateSaysWhy()
    {
        TierCandidate cxl = TierPlacement.Rank(s_topology, new TierRequest { Initiator = 0 }).Single(c => c.Device.Name == "dax3.0");
        Assert.Equal(cxl.Device.Size, cxl.CapacityBytes);
        Assert.StartsWith("free space not readable, whole size counted: ", cxl.CapacityNote, StringComparison.Ordinal);
    }

    [Fact]
    public void ARequestForFreeSpaceGoesElsewhereWhenTheLargestDeviceIsMostlyAllocated()
    {
        const long mib = 1L << 20;
        DaxDevice cxlFixture = s_topology.Devices.Single(d => d.Name == "dax3.0");
        DaxDevice nvdimmFixture = s_topology.Devices.Single(d => d.Name == "dax0.0");
        Assert.True(cxlFixture.Size > nvdimmFixture.Size); // 510 MiB and 502 MiB
        using DaxDevice cxl = DaxDevice.CreateEmulatedMemory("dax3.0", cxlFixture.Size, PageSize.Pmd);
        using DaxDevice nvdimm = DaxDevice.CreateEmulatedMemory("dax0.0", nvdimmFixture.Size, PageSize.Pmd);
        using (DaxRangeAllocator labels = DaxRangeAllocator.Format(cxl))
        {
            // 64 MiB free on the CXL device, but as two gaps of 32 MiB: [202, 234) and [478, 510) MiB.
            labels.AllocateAt("index", 2 * mib, 200 * mib);
            labels.AllocateAt("log", 234 * mib, 244 * mib);
        }
        DaxRangeAllocator.Format(nvdimm).Dispose();
        DeviceFreeSpace Free(DaxDevice d) => TierPlacement.AllocatorFreeSpace(d.Name == "dax3.0" ? cxl : nvdimm);
        var request = new TierRequest { Persistence = DaxMemoryPersistence.Persistent, MinimumBytes = 64 * mib, Initiator = 0 };

        // By latency the CXL device comes first; with too little room left in one piece it is passed over.
        TierCandidate chosen = TierPlacement.Select(s_topology, request, Free);
        Assert.Equal("dax0.0", chosen.Device.Name);
        Assert.Equal(nvdimm.Size - (2 * mib), chosen.CapacityBytes);
        Assert.Null(chosen.CapacityNote);
        TierCandidate passed = TierPlacement.Rank(s_topology, request, Free).Single(c => c.Device.Name == "dax3.0");
        Assert.Equal(32 * mib, passed.CapacityBytes);
        Assert.Equal($"{32 * mib} bytes free, at least {64 * mib} asked for", passed.Rejection);
        // A request that fits the gap still prefers the faster device.
        Assert.Equal("dax3.0", TierPlacement.Select(s_topology, request with { MinimumBytes = 32 * mib }, Free).Device.Name);

        // When none has room, the error lists what each has free.
        MemoryPlacementException e = Assert.Throws<MemoryPlacementException>(() => TierPlacement.Select(s_topology, request with { MinimumBytes = 600 * mib }, Free));
        Assert.Equal(MemoryPlacementFailure.NoMatchingMemory, e.Failure);
        Assert.Contains(e.Available, a => a.StartsWith("dax3.0 (Cxl, Persistent, devdax, node4", StringComparison.Ordinal)
            && a.EndsWith($"{32 * mib} bytes free): {32 * mib} bytes free, at least {600 * mib} asked for", StringComparison.Ordinal));
        Assert.Contains(e.Available, a => a.StartsWith("dax0.0 (Nvdimm, Persistent, devdax, node0", StringComparison.Ordinal)
            && a.EndsWith($"{500 * mib} bytes free): {500 * mib} bytes free, at least {600 * mib} asked for", StringComparison.Ordinal));
        Assert.Contains($"dax3.0 (Cxl, Persistent, devdax, node4", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ADeviceWithoutARangeTableCountsWhatFormattingLeavesAndOneHeldByAWriterCountsNothing()
    {
        const long mib = 1L << 20;
        using DaxDevice fresh = DaxDevice.CreateEmulatedMemory("fresh", 64 * mib, PageSize.Pmd);
        DeviceFreeSpace unformatted = TierPlacement.AllocatorFreeSpace(fresh);
        Assert.Equal(62 * mib, unformatted.Bytes);
        Assert.Equal("no range table yet: what DaxRangeAllocator.Format would leave", unformatted.Note);

        using DaxRangeAllocator writer = DaxRangeAllocator.Format(fresh);
        DeviceFreeSpace held = TierPlacement.AllocatorFreeSpace(fresh);
        Assert.Equal(0, held.Bytes);
        Assert.StartsWith("its range table is held by a writable allocator: ", held.Note, StringComparison.Ordinal);
    }

    [Fact]
    public void MappingACandidateThatDoesNotMatchIsRefused()
    {
        TierCandidate rejected = TierPlacement.Rank(s_topology, new TierRequest { MinimumBytes = 1L << 50, Initiator = 0 })[0];
        Assert.False(rejected.Matches);
        Assert.Equal(MemoryPlacementFailure.NoMatchingMemory, Assert.Throws<MemoryPlacementException>(() => TierPlacement.Map(rejected, 2L << 20, "r")).Failure);
    }
}
