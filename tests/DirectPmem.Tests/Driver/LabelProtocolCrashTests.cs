using System.Buffers.Binary;
using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Testing;
using Xunit;

namespace DirectPmem.Tests.Driver;

/// <summary>
/// The allocator's failure-atomic label protocol, swept by the project's own CrashTest on a
/// SimulatedDevice: a crash before every drain and at the end, the fixed images plus seeded random
/// ones (with cache eviction) per crash point, each recovered by opening the table again.
/// </summary>
public sealed class LabelProtocolCrashTests(ITestOutputHelper output)
{
    // The geometry the label table describes; only its first 8 KiB (the two slots) are simulated.
    private const long DeviceSize = 64L << 20;
    private const PageSize Align = PageSize.Pte;
    private const string Path = "simulated";
    private const int DrainsPerUpdate = 3; // unpublish, body, publish

    private static readonly Action<DaxRangeAllocator>[] s_operations =
    [
        a => a.Allocate("a", 3 * 4096),
        a => a.Allocate("b", 2L << 20, PageSize.Pmd),
        a => a.AllocateAt("c", 32L << 20, 4096),
        a => a.Free("a"),
        a => a.Allocate("d", 4096),
        a => a.Free("b"),
    ];

    private static List<string[]> ExpectedStates(Action<DaxMapping> setup)
    {
        using SimulatedDevice device = SimulatedDevice.Create(16 * 1024);
        setup(device.Mapping);
        using DaxRangeAllocator allocator = DaxRangeAllocator.OpenMedium(device.Mapping, DeviceSize, Align, Path);
        var states = new List<string[]> { Describe(allocator) };
        foreach (Action<DaxRangeAllocator> operation in s_operations)
        {
            operation(allocator);
            states.Add(Describe(allocator));
        }
        return states;
    }

    private static string[] Describe(DaxRangeAllocator allocator) => [.. allocator.Ranges.Select(r => r.ToString())];

    private static void Format(DaxMapping map) => DaxRangeAllocator.FormatMedium(map, DeviceSize, Align, Path).Dispose();

    // A table published in slot 0 with a sequence three steps before the wrap: the updates cross 2^64-2 -> 1.
    private static void FormatNearTheWrap(DaxMapping map)
    {
        Span<byte> image = stackalloc byte[LabelSlot.Size];
        LabelSlot.Encode(image, 0, LabelSlot.MaxSequence - 2, DeviceSize, Align, []);
        image.CopyTo(map.GetSpan(0, LabelSlot.Size));
        map.Persist(0, LabelSlot.Size);
    }

    private static void RunAll(DaxMapping map)
    {
        using DaxRangeAllocator allocator = DaxRangeAllocator.OpenMedium(map, DeviceSize, Align, Path);
        foreach (Action<DaxRangeAllocator> operation in s_operations)
        {
            operation(allocator);
        }
    }

    private static int RandomImages => int.TryParse(Environment.GetEnvironmentVariable("DIRECTPMEM_CRASH_IMAGES"), out int n) && n > 0 ? n : 64;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EveryCrashLeavesTheTableBeforeOrAfterTheUpdateInFlightAndNeverLosesACompletedOne(bool nearTheWrap)
    {
        Action<DaxMapping> setup = nearTheWrap ? FormatNearTheWrap : Format;
        List<string[]> states = ExpectedStates(setup);
        long drains = s_operations.Length * DrainsPerUpdate;
        long images = 0;
        for (long point = 1; point <= drains + 1; point++)
        {
            // Crash point p is "just before drain p completes": the updates whose last drain came earlier are durable.
            int completed = (int)Math.Min((point - 1) / DrainsPerUpdate, s_operations.Length);
            bool atPublish = point <= drains && point % DrainsPerUpdate == 0;
            CrashTestResult result = new CrashTest
            {
                DeviceLength = 16 * 1024,
                Setup = setup,
                Workload = RunAll,
                OnlyCrashPoint = point,
                RandomImages = RandomImages,
                Recover = map =>
                {
                    string[] found;
                    using (DaxRangeAllocator recovered = DaxRangeAllocator.OpenMedium(map, DeviceSize, Align, Path))
                    {
                        found = Describe(recovered);
                        bool before = found.SequenceEqual(states[completed]);
                        // Only once the publish word has been stored can the update in flight be visible.
                        bool after = atPublish && found.SequenceEqual(states[completed + 1]);
                        if (!before && !after)
                        {
                            throw new InvalidOperationException(
                                $"crash point {point}: recovered [{string.Join(", ", found)}], expected [{string.Join(", ", states[completed])}]" +
                                (atPublish ? $" or [{string.Join(", ", states[completed + 1])}]" : ""));
                        }
                        // The recovered table takes the next update (the torn slot is reused) and it survives a reopen.
                        recovered.Allocate("after-crash", 4096);
                    }
                    using DaxRangeAllocator reopened = DaxRangeAllocator.OpenMedium(map, DeviceSize, Align, Path);
                    Assert.Equal(found.Length + 1, reopened.Ranges.Count);
                    Assert.Contains(reopened.Ranges, r => r.Name == "after-crash");
                },
            }.Run();
            Assert.True(result.Passed, result.Summary());
            Assert.Equal(drains, result.Statistics.Drains);
            images += result.Statistics.ImagesTried;
        }
        output.WriteLine($"{drains + 1} crash points ({s_operations.Length} updates, start {(nearTheWrap ? "near the wrap" : "after Format")}), {images} images recovered");
        Assert.True(images > drains * 3, $"only {images} images were tried");
    }

    [Fact]
    public void TheSweepCatchesACommitThatPublishesBeforeTheBodyIsDurable()
    {
        // A broken commit written here, not in src/: the whole slot, publish word included, in one persist.
        static void BrokenCommit(DaxMapping map)
        {
            Span<byte> image = stackalloc byte[LabelSlot.Size];
            var entry = new DaxAllocation("x", 1L << 20, 4096, Align);
            LabelSlot.Encode(image, 1, 2, DeviceSize, Align, [entry]);
            image.CopyTo(map.GetSpan(LabelSlot.Size, LabelSlot.Size));
            map.Persist(LabelSlot.Size, LabelSlot.Size);
        }
        CrashTestResult result = new CrashTest
        {
            DeviceLength = 16 * 1024,
            Setup = Format,
            Workload = BrokenCommit,
            Recover = map => DaxRangeAllocator.OpenMedium(map, DeviceSize, Align, Path).Dispose(),
        }.Run();
        Assert.False(result.Passed);
        Assert.IsType<DaxLabelException>(result.Failures[0].Error);
    }

    [Fact]
    public void SequencesWrapFromTheLargestBackToOneAndTheNewerSlotIsStillChosen()
    {
        using SimulatedDevice device = SimulatedDevice.Create(16 * 1024);
        FormatNearTheWrap(device.Mapping);
        var seen = new List<ulong>();
        using (DaxRangeAllocator allocator = DaxRangeAllocator.OpenMedium(device.Mapping, DeviceSize, Align, Path))
        {
            seen.Add(allocator.Sequence);
            for (int i = 0; i < 4; i++)
            {
                allocator.Allocate("r" + i, 4096);
                seen.Add(allocator.Sequence);
                using DaxRangeAllocator reopened = DaxRangeAllocator.OpenMedium(device.Mapping, DeviceSize, Align, Path, readOnly: true);
                Assert.Equal(allocator.Sequence, reopened.Sequence);
                Assert.Equal(i + 1, reopened.Ranges.Count);
            }
        }
        Assert.Equal([LabelSlot.MaxSequence - 2, LabelSlot.MaxSequence - 1, LabelSlot.MaxSequence, 1UL, 2UL], seen);
        // No publish word ever equals the "unpublished" value 0.
        Assert.NotEqual(0UL, BinaryPrimitives.ReadUInt64LittleEndian(device.Mapping.GetReadOnlySpan(0, 8)));
        Assert.NotEqual(0UL, BinaryPrimitives.ReadUInt64LittleEndian(device.Mapping.GetReadOnlySpan(LabelSlot.Size, 8)));
    }

    [Theory]
    [InlineData(2UL, 1UL, true)]
    [InlineData(1UL, 2UL, false)]
    [InlineData(1UL, LabelSlot.MaxSequence, true)]    // 1 follows the largest
    [InlineData(LabelSlot.MaxSequence, 1UL, false)]
    [InlineData(5UL, 5UL, false)]
    public void NewerIsDecidedOnTheSequenceCycle(ulong candidate, ulong than, bool newer)
    {
        Assert.Equal(newer, LabelSlot.IsNewer(candidate, than));
        Assert.Equal(1UL, LabelSlot.NextSequence(LabelSlot.MaxSequence));
        Assert.Equal(LabelSlot.MaxSequence, LabelSlot.NextSequence(LabelSlot.MaxSequence - 1));
    }
}
