using DirectPmem.Mapping;
using DirectPmem.Persistence;
using Xunit;

namespace DirectPmem.Tests.Persistence;

/// <summary>Copy, move and fill through a forced cache-line mapping (so the flushes run), against a reference.</summary>
public sealed unsafe class CopyEngineTests : IDisposable
{
    private const int MaxLength = 1100;
    private const int Area = 8192;          // destination window
    private const byte Sentinel = 0xA5;
    private readonly PmemFile _memory;
    private readonly DaxMapping _mapping;
    private readonly byte[] _source;

    public CopyEngineTests()
    {
        _memory = PmemFile.CreateMemory("copy-engine-tests", 16 << 20);
        _mapping = _memory.Map(new DaxMappingOptions { ForceCacheLineGranularity = true });
        Assert.Equal(PersistGranularity.CacheLine, _mapping.Granularity);
        _source = new byte[MaxLength + 128];
        new Random(1234).NextBytes(_source);
    }

    public void Dispose()
    {
        _mapping.Dispose();
        _memory.Dispose();
    }

    public static TheoryData<int> Misalignments()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < 64; i++)
        {
            data.Add(i);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Misalignments))]
    public void WriteCopiesEveryLengthUpTo1100FromEverySourceMisalignment(int destinationMisalignment)
    {
        foreach (PmemCopyOptions flags in new[] { PmemCopyOptions.None, PmemCopyOptions.NoDrain })
        {
            for (int sourceMisalignment = 0; sourceMisalignment < 64; sourceMisalignment++)
            {
                CheckWrites(destinationMisalignment, sourceMisalignment, flags);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Misalignments))]
    public void WriteCopiesCorrectlyWithEveryStoreKindForced(int destinationMisalignment)
    {
        foreach (PmemCopyOptions flags in new[] { PmemCopyOptions.NonTemporal, PmemCopyOptions.Temporal, PmemCopyOptions.NoFlush, PmemCopyOptions.NonTemporal | PmemCopyOptions.NoDrain })
        {
            foreach (int sourceMisalignment in new[] { 0, 1, 7, 8, 31, 63 })
            {
                CheckWrites(destinationMisalignment, sourceMisalignment, flags);
            }
        }
    }

    private void CheckWrites(int destinationMisalignment, int sourceMisalignment, PmemCopyOptions flags)
    {
        long window = 4096;
        Span<byte> area = _mapping.GetSpan(window, Area);
        for (int length = 0; length <= MaxLength; length++)
        {
            area[..(destinationMisalignment + length + 64)].Fill(Sentinel);
            ReadOnlySpan<byte> source = _source.AsSpan(sourceMisalignment, length);
            _mapping.Write(source, window + destinationMisalignment, flags);
            AssertWritten(area, destinationMisalignment, source, length, flags, sourceMisalignment);
        }
    }

    private static void AssertWritten(ReadOnlySpan<byte> area, int at, ReadOnlySpan<byte> expected, int length, PmemCopyOptions flags, int sourceMisalignment)
    {
        if (!area.Slice(at, length).SequenceEqual(expected)
            || area[..at].IndexOfAnyExcept(Sentinel) >= 0
            || area.Slice(at + length, 64).IndexOfAnyExcept(Sentinel) >= 0)
        {
            Assert.Fail($"copy of {length} bytes to misalignment {at} from misalignment {sourceMisalignment} with {flags} is wrong");
        }
    }

    [Theory]
    [MemberData(nameof(Misalignments))]
    public void MoveIsCorrectForEveryLengthAndMisalignmentWithOverlapBothWays(int destinationMisalignment)
    {
        const long Base = 64 * 1024;
        const int Before = 128;
        byte[] reference = new byte[Before + MaxLength + 256];
        byte[] expected = new byte[reference.Length];
        new Random(destinationMisalignment).NextBytes(reference);
        // The window starts 128 bytes before the destination's line and covers every source and destination byte.
        Span<byte> window = _mapping.GetSpan(Base - Before, reference.Length);
        for (int sourceMisalignment = 0; sourceMisalignment < 64; sourceMisalignment++)
        {
            // Source 64 bytes before, in the same line as, and 64 bytes after the destination's
            // line: for lengths over 64 the ranges overlap with the destination above and below the source.
            foreach (int shift in new[] { -64, 0, 64 })
            {
                long destination = Base + destinationMisalignment;
                long source = Base + sourceMisalignment + shift;
                for (int length = 0; length <= MaxLength; length++)
                {
                    int touched = length + 256;
                    reference.AsSpan(0, touched).CopyTo(window);
                    reference.AsSpan(0, touched).CopyTo(expected);
                    _mapping.Move(source, destination, length);
                    Array.Copy(reference, source - Base + Before, expected, destination - Base + Before, length);
                    if (!window[..touched].SequenceEqual(expected.AsSpan(0, touched)))
                    {
                        Assert.Fail($"move of {length} bytes from {source - Base} to {destination - Base} is wrong");
                    }
                }
            }
        }
    }

    [Fact]
    public void MoveIsCorrectForEveryLengthUpTo1100WithOverlapBothWays()
        => AssertOverlappingCopies(128 * 1024, 3, [1, 7, 8, 9, 63, 64, 65, 200, 256, 513], Enumerable.Range(0, MaxLength + 1), "move",
            (source, destination, length) => _mapping.Move(source, destination, length, length % 2 == 0 ? PmemCopyOptions.None : PmemCopyOptions.NonTemporal));

    [Fact]
    public void WriteFromTheSameMappingIsCorrectWithOverlapBothWays()
    {
        // Write's source may lie in the mapping. Aligned whole lines from the threshold up are
        // streamed by Write itself unless the destination starts inside the source (then the
        // backward copy of the operations object runs): both, at every distance, against a reference.
        int[] lengths = [.. Enumerable.Range(0, 512), .. Enumerable.Range(8, 25).Select(i => i * 64)];
        foreach (PmemCopyOptions flags in new[] { PmemCopyOptions.None, PmemCopyOptions.NoDrain })
        {
            AssertOverlappingCopies(256 * 1024, 0, [1, 8, 63, 64, 65, 128, 256, 1024], lengths, $"write with {flags} from the mapping",
                (source, destination, length) => _mapping.Write(_mapping.GetReadOnlySpan(source, length), destination, flags));
        }
        Pmem.Drain();
    }

    // Copies within a window of 12 KiB around base + misalignment, from sources at each distance
    // below and above the destination, and compares the whole window with a reference.
    private void AssertOverlappingCopies(long lineBase, int misalignment, int[] distances, IEnumerable<int> lengths, string what, Action<long, long, int> copy)
    {
        long windowStart = lineBase - 4096;
        byte[] reference = new byte[3 * 4096];
        new Random((int)lineBase + misalignment).NextBytes(reference);
        Span<byte> window = _mapping.GetSpan(windowStart, reference.Length);
        foreach (int distance in distances)
        {
            foreach (int sign in new[] { -1, 1 })
            {
                foreach (int length in lengths)
                {
                    long destination = lineBase + misalignment;
                    long source = destination + sign * distance;
                    reference.CopyTo(window);
                    copy(source, destination, length);
                    byte[] expected = (byte[])reference.Clone();
                    Array.Copy(reference, source - windowStart, expected, destination - windowStart, length);
                    if (!window.SequenceEqual(expected))
                    {
                        Assert.Fail($"{what} of {length} bytes at distance {sign * distance} is wrong");
                    }
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Misalignments))]
    public void FillSetsExactlyTheRangeForEveryLengthUpTo1100(int destinationMisalignment)
    {
        long window = 4096;
        Span<byte> area = _mapping.GetSpan(window, Area);
        foreach (PmemCopyOptions flags in new[] { PmemCopyOptions.None, PmemCopyOptions.NonTemporal, PmemCopyOptions.Temporal })
        {
            for (int length = 0; length <= MaxLength; length++)
            {
                area[..(destinationMisalignment + length + 64)].Fill(Sentinel);
                byte value = (byte)(length * 31 + 1);
                if (value == Sentinel)
                {
                    value++;
                }
                _mapping.Fill(window + destinationMisalignment, length, value, flags);
                if (area.Slice(destinationMisalignment, length).IndexOfAnyExcept(value) >= 0
                    || area[..destinationMisalignment].IndexOfAnyExcept(Sentinel) >= 0
                    || area.Slice(destinationMisalignment + length, 64).IndexOfAnyExcept(Sentinel) >= 0)
                {
                    Assert.Fail($"fill of {length} bytes at misalignment {destinationMisalignment} with {flags} is wrong");
                }
            }
        }
    }

    [Theory]
    [InlineData(65536, 0, 0)]
    [InlineData(65536 + 13, 5, 17)]
    [InlineData(1 << 20, 0, 1)]
    [InlineData((4 << 20) + 5, 63, 62)]
    public void LargeWritesMovesAndFillsAreCorrect(int length, int destinationMisalignment, int sourceMisalignment)
    {
        byte[] source = new byte[length + 64];
        new Random(length).NextBytes(source);
        long destination = (1 << 20) + destinationMisalignment;
        _mapping.Write(source.AsSpan(sourceMisalignment, length), destination);
        Assert.True(_mapping.GetReadOnlySpan(destination, length).SequenceEqual(source.AsSpan(sourceMisalignment, length)));

        // Move it up by a little (overlap, backward copy) and back down (overlap, forward copy).
        _mapping.Move(destination, destination + 100, length);
        Assert.True(_mapping.GetReadOnlySpan(destination + 100, length).SequenceEqual(source.AsSpan(sourceMisalignment, length)));
        _mapping.Move(destination + 100, destination + 1, length);
        Assert.True(_mapping.GetReadOnlySpan(destination + 1, length).SequenceEqual(source.AsSpan(sourceMisalignment, length)));

        _mapping.Fill(destination, length, 0x3C);
        Assert.Equal(-1, _mapping.GetReadOnlySpan(destination, length).IndexOfAnyExcept((byte)0x3C));
    }

    [Fact]
    public void PointerLevelCopyAndFillMatchTheReference()
    {
        byte* destination = _mapping.DangerousGetPointer() + (2 << 20) + 3;
        byte[] source = new byte[70000];
        new Random(5).NextBytes(source);
        fixed (byte* from = source)
        {
            Pmem.DangerousCopy(destination, from, (nuint)source.Length);
        }
        Assert.True(new ReadOnlySpan<byte>(destination, source.Length).SequenceEqual(source));
        Pmem.DangerousFill(destination, 7, 1000, PmemCopyOptions.NoDrain);
        Pmem.Drain();
        Assert.Equal(-1, new ReadOnlySpan<byte>(destination, 1000).IndexOfAnyExcept((byte)7));
        Assert.Equal(source[1000], destination[1000]);
        Pmem.DangerousPersist(destination, 1000);
    }

    [Fact]
    public void PublishStoresTheWordAndRefusesAMisalignedOffset()
    {
        _mapping.Publish(4096 + 8, 0x0123456789ABCDEFUL);
        Assert.Equal(0x0123456789ABCDEFUL, _mapping.GetReadOnlyRef<ulong>(4096 + 8));
        ArgumentException e = Assert.Throws<ArgumentException>(() => _mapping.Publish(4096 + 4, 1));
        Assert.Equal("offset", e.ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => _mapping.Publish(_mapping.Length - 4, 1));
    }

    [Fact]
    public void WriteRefusesARangePastTheEndAndAReadOnlyMapping()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _mapping.Write(new byte[16], _mapping.Length - 8));
        Assert.Throws<ArgumentOutOfRangeException>(() => _mapping.Move(_mapping.Length - 8, 0, 16));
        Assert.Throws<ArgumentOutOfRangeException>(() => _mapping.Fill(-1, 4, 0));
        using DaxMapping readOnly = _memory.Map(new DaxMappingOptions { ReadOnly = true, Length = 4096 });
        Assert.Throws<InvalidOperationException>(() => readOnly.Write(new byte[8], 0));
        Assert.Throws<InvalidOperationException>(() => readOnly.Publish(0, 1));
    }
}
