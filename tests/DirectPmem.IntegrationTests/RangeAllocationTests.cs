using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;

namespace DirectPmem.IntegrationTests;

/// <summary>Named ranges carved out of the real device, recorded in its label area, and found again after a remap.</summary>
[Collection(DeviceTestGroup.Name)]
public sealed class RangeAllocationTests(ITestOutputHelper output)
{
    [Fact]
    public void Ranges_allocated_with_labels_on_the_device_survive_a_remap_of_the_labels_and_the_data()
    {
        using DaxDevice device = DaxDevice.Open(IntegrationEnvironment.RequireDevice());
        string a = "it-a-" + Environment.ProcessId, b = "it-b-" + Environment.ProcessId;
        byte[] dataA = FileSystemDaxTests.Pattern(4096, seed: 21), dataB = FileSystemDaxTests.Pattern(4096, seed: 22);
        DaxAllocation allocA, allocB;
        ulong sequence;
        using (DaxRangeAllocator allocator = OpenOrFormat(device, output))
        {
            output.WriteLine($"label area {allocator.LabelAreaLength} bytes, sequence {allocator.Sequence}, slot {allocator.ActiveSlot}, ranges: {string.Join(", ", allocator.Ranges)}");
            allocA = allocator.Allocate(a, 4L << 20);
            allocB = allocator.AllocateAt(b, RangeValidator.AlignDown(device.Size / 4, (long)device.Align), 2L << 20);
            output.WriteLine($"allocated {allocA} and {allocB}; sequence {allocator.Sequence}");
            Assert.True(allocA.Offset >= allocator.LabelAreaLength, $"{allocA} overlaps the label area");
            Assert.Equal(0, allocA.Offset % (long)device.Align);

            using DaxMapping mapA = allocator.Map(a);
            using DaxMapping mapB = allocator.Map(b);
            Assert.Equal(allocA.Length, mapA.Length);
            Assert.Equal(allocA.Offset, mapA.SourceOffset);
            Assert.Equal(0, mapA.AddressOf() % (long)device.Align);
            dataA.CopyTo(mapA.GetSpan(allocA.Length - dataA.Length, dataA.Length));
            mapA.Persist(allocA.Length - dataA.Length, dataA.Length);
            dataB.CopyTo(mapB.GetSpan(0, dataB.Length));
            mapB.Persist(0, dataB.Length);
            sequence = allocator.Sequence;
        }

        // Everything unmapped; map the labels and the ranges again from a fresh device object.
        using (DaxDevice again = DaxDevice.Open(device.DevicePath))
        using (DaxRangeAllocator reopened = DaxRangeAllocator.Open(again))
        {
            output.WriteLine($"reopened: sequence {reopened.Sequence}, ranges: {string.Join(", ", reopened.Ranges)}");
            Assert.Equal(sequence, reopened.Sequence);
            Assert.Equal(allocA, reopened.Get(a));
            Assert.Equal(allocB, reopened.Get(b));
            using (DaxMapping mapA = reopened.Map(a, new DaxMappingOptions { ReadOnly = true }))
            using (DaxMapping mapB = reopened.Map(b, new DaxMappingOptions { ReadOnly = true }))
            {
                Assert.Equal(dataA, mapA.GetReadOnlySpan(allocA.Length - dataA.Length, dataA.Length).ToArray());
                Assert.Equal(dataB, mapB.GetReadOnlySpan(0, dataB.Length).ToArray());
            }

            // Overlaps are refused by the labels, on the real device as on an emulated one.
            DaxLabelException overlap = Assert.Throws<DaxLabelException>(() => reopened.AllocateAt("it-overlap", allocB.Offset, 2L << 20));
            output.WriteLine($"overlap refused: {overlap.Rule}: {overlap.Message}");
            Assert.Equal(DaxLabelRule.Overlap, overlap.Rule);

            // With a label table on the device, Map keeps out of the label area; MapRaw reaches it on purpose.
            using (DaxMapping allocatable = again.Map(new DaxMappingOptions { ReadOnly = true }))
            {
                output.WriteLine($"Map() of the labelled device starts at device offset 0x{allocatable.SourceOffset:x}");
                Assert.Equal(reopened.LabelAreaLength, allocatable.SourceOffset);
                Assert.Equal(again.Size - reopened.LabelAreaLength, allocatable.Length);
            }
            DaxLabelException labelArea = Assert.Throws<DaxLabelException>(
                () => again.Map(new DaxMappingOptions { Offset = 0, Length = reopened.LabelAreaLength }).Dispose());
            Assert.Equal(DaxLabelRule.LabelAreaProtected, labelArea.Rule);
            using (DaxMapping raw = again.MapRaw(new DaxMappingOptions { Length = reopened.LabelAreaLength, ReadOnly = true }))
            {
                Assert.Equal(0, raw.SourceOffset);
            }

            // A range still mapped cannot be freed.
            using (DaxMapping held = reopened.Map(a, new DaxMappingOptions { ReadOnly = true }))
            {
                Assert.Equal(DaxLabelRule.RangeInUse, Assert.Throws<DaxLabelException>(() => reopened.Free(a)).Rule);
            }

            reopened.Free(a);
            reopened.Free(b);
            Assert.DoesNotContain(reopened.Ranges, r => r.Name == a || r.Name == b);
        }
    }

    /// <summary>
    /// Opens the device's label table. The tests may overwrite the device they are given, so whatever
    /// else it holds (nothing, another program's data, a table of another geometry, a corrupt table)
    /// is wiped and formatted, and the reason is written to the output.
    /// </summary>
    internal static DaxRangeAllocator OpenOrFormat(DaxDevice device, ITestOutputHelper output)
    {
        try
        {
            return DaxRangeAllocator.Open(device);
        }
        catch (DaxLabelException e)
        {
            output.WriteLine($"{device.Name} holds no usable label table ({e.Rule}: {e.Message}): wiping its two label slots and formatting it");
            using (DaxMapping raw = device.MapRaw(new DaxMappingOptions { Length = DaxRangeAllocator.LabelAreaLengthFor(device.Align) }))
            {
                raw.Fill(0, 2 * 4096, 0);
                raw.Persist(0, 2 * 4096);
            }
            return DaxRangeAllocator.Format(device);
        }
    }
}
