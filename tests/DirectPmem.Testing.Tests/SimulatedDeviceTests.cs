using DirectPmem.Mapping;
using DirectPmem.Persistence;
using Xunit;
using static DirectPmem.Testing.Tests.Pm;

namespace DirectPmem.Testing.Tests;

public sealed class SimulatedDeviceTests
{
    [Fact]
    public void TheDeviceIsAnOrdinarySimulatedCacheLineMapping()
    {
        using SimulatedDevice device = SimulatedDevice.Create(8192);
        Assert.Equal(MappingBacking.Anonymous, device.Mapping.Backing);
        Assert.Equal(PersistGranularity.CacheLine, device.Mapping.Granularity);
        Assert.Equal(8192, device.Mapping.Length);
        Assert.Equal(8192, device.Length);
    }

    [Fact]
    public void CreateRefusesALengthThatIsNotAPageMultiple()
    {
        Assert.ThrowsAny<ArgumentException>(() => SimulatedDevice.Create(4096 + 64));
        Assert.Throws<ArgumentOutOfRangeException>("length", () => SimulatedDevice.Create(0));
    }

    [Fact]
    public void AStoreReachesTheMediaOnlyAfterPersist()
    {
        using SimulatedDevice device = SimulatedDevice.Create(4096);
        Store(device.Mapping, 128, 0xABCD);
        Assert.Equal(0UL, WordOf(device.GetMediaCopy(), 128));
        device.Mapping.Persist(128, 8);
        Assert.Equal(0xABCDUL, WordOf(device.GetMediaCopy(), 128));
        Assert.Equal(1, device.DrainCount);
        Assert.Equal(1, device.FlushCount);
    }

    [Fact]
    public void AFlushedLineReachesTheMediaOnlyAtTheNextDrain()
    {
        using SimulatedDevice device = SimulatedDevice.Create(4096);
        Store(device.Mapping, 64, 7);
        device.Mapping.Flush(64, 8);
        Assert.Equal(0UL, WordOf(device.GetMediaCopy(), 64));
        InFlightWord word = Assert.Single(device.Crash().InFlight);
        Assert.Equal(new InFlightWord(64, 0, 7, 7), word);
        device.Mapping.Drain();
        Assert.Equal(7UL, WordOf(device.GetMediaCopy(), 64));
        Assert.Empty(device.Crash().InFlight);
    }

    [Fact]
    public void AFlushWritesBackTheLineAsItWasAtTheFlushNotAtTheDrain()
    {
        using SimulatedDevice device = SimulatedDevice.Create(4096);
        Store(device.Mapping, 0, 1);
        device.Mapping.Flush(0, 8);
        Store(device.Mapping, 0, 2);           // re-dirties the line after its write-back began
        Assert.Equal(new InFlightWord(0, 0, 1, 2), Assert.Single(device.Crash().InFlight));
        device.Mapping.Drain();
        Assert.Equal(1UL, WordOf(device.GetMediaCopy(), 0));
        Assert.Equal(new InFlightWord(0, 1, null, 2), Assert.Single(device.Crash().InFlight));
    }

    [Fact]
    public void AFlushCoversWholeCacheLines()
    {
        using SimulatedDevice device = SimulatedDevice.Create(4096);
        Store(device.Mapping, 64, 1);
        Store(device.Mapping, 120, 2);
        Store(device.Mapping, 128, 3);         // the next line
        device.Mapping.Persist(100, 1);        // one byte in the first line flushes all of it
        byte[] media = device.GetMediaCopy();
        Assert.Equal(1UL, WordOf(media, 64));
        Assert.Equal(2UL, WordOf(media, 120));
        Assert.Equal(0UL, WordOf(media, 128));
    }

    [Fact]
    public void CrashAtDrainCapturesTheStateJustBeforeThatDrainCompletes()
    {
        using SimulatedDevice device = SimulatedDevice.Create(4096);
        device.CrashAtDrain = 2;
        Store(device.Mapping, 0, 10);
        device.Mapping.Persist(0, 8);
        Store(device.Mapping, 8, 20);
        Store(device.Mapping, 64, 30);
        device.Mapping.Flush(8, 8);
        device.Mapping.Drain();                 // drain 2: the crash point
        Store(device.Mapping, 128, 40);        // after the crash point: not in the state
        device.Mapping.Persist(128, 8);

        CrashState crash = device.CapturedCrash!;
        Assert.NotNull(crash);
        Assert.True(crash.IsBeforeDrain);
        Assert.Equal(2, crash.DrainNumber);
        Assert.Equal(10UL, WordOf(crash.Media.Span, 0));
        Assert.Equal(
            [new InFlightWord(8, 0, 20, 20), new InFlightWord(64, 0, null, 30)],
            crash.InFlight);
        Assert.Equal(3, device.DrainCount);
    }

    [Fact]
    public void ImagesNeverTearAWordAndTouchOnlyWordsInFlight()
    {
        using SimulatedDevice device = SimulatedDevice.Create(4096);
        for (int i = 0; i < 64; i++)
        {
            Store(device.Mapping, i * 8, 0x1111_1111_1111_1111UL * (ulong)(i % 15 + 1));
        }
        device.Mapping.Persist(0, 256);        // words 0..31 durable
        for (int i = 0; i < 64; i++)
        {
            Store(device.Mapping, i * 8, ~(ulong)i);
        }
        device.Mapping.Flush(0, 128);         // words 0..15 flushed, not drained
        CrashState crash = device.Crash();
        Assert.Equal(64, crash.InFlight.Count);
        byte[] media = crash.Media.ToArray();
        for (ulong seed = 0; seed < 200; seed++)
        {
            CrashImage image = crash.CreateImage(ImageStrategy.Random, seed);
            ReadOnlySpan<byte> bytes = image.Data.Span;
            for (int i = 0; i < crash.InFlight.Count; i++)
            {
                InFlightWord word = crash.InFlight[i];
                ulong value = WordOf(bytes, word.Offset);
                Assert.Equal(image.ChosenValue(i), value);
                Assert.True(value == word.Old || value == word.Current || value == word.Flushed,
                    $"word 0x{word.Offset:x} holds 0x{value:x}, none of its possible values");
            }
            Assert.True(bytes[512..].SequenceEqual(media.AsSpan(512)));
        }
    }

    [Fact]
    public void TheSameSeedGivesTheSameImageAndDifferentSeedsDiffer()
    {
        using SimulatedDevice device = SimulatedDevice.Create(4096);
        for (int i = 0; i < 40; i++)
        {
            Store(device.Mapping, i * 8, (ulong)i + 1);
        }
        CrashState crash = device.Crash();
        byte[] first = crash.CreateImage(ImageStrategy.Random, 42).Data.ToArray();
        Assert.Equal(first, crash.CreateImage(ImageStrategy.Random, 42).Data.ToArray());
        Assert.NotEqual(first, crash.CreateImage(ImageStrategy.Random, 43).Data.ToArray());
    }

    [Fact]
    public void TheDeterministicStrategiesGiveMediaFlushedAndVolatileImages()
    {
        using SimulatedDevice device = SimulatedDevice.Create(4096);
        Store(device.Mapping, 0, 1);
        device.Mapping.Flush(0, 8);
        Store(device.Mapping, 64, 2);
        CrashState crash = device.Crash();
        ReadOnlySpan<byte> nothing = crash.CreateImage(ImageStrategy.NothingSurvived).Data.Span;
        ReadOnlySpan<byte> flushed = crash.CreateImage(ImageStrategy.FlushedSurvived).Data.Span;
        ReadOnlySpan<byte> everything = crash.CreateImage(ImageStrategy.EverythingSurvived).Data.Span;
        Assert.Equal((0UL, 0UL), (WordOf(nothing, 0), WordOf(nothing, 64)));
        Assert.Equal((1UL, 0UL), (WordOf(flushed, 0), WordOf(flushed, 64)));
        Assert.Equal((1UL, 2UL), (WordOf(everything, 0), WordOf(everything, 64)));
        Assert.True(everything.SequenceEqual(device.Mapping.GetReadOnlySpan(0, 4096)));
    }

    [Fact]
    public void ExhaustiveEnumerationYieldsEveryCombinationExactlyOnce()
    {
        using SimulatedDevice device = SimulatedDevice.Create(4096);
        Store(device.Mapping, 0, 1);
        device.Mapping.Flush(0, 8);
        Store(device.Mapping, 0, 2);           // three possible values: 0, 1 (flushed), 2 (evicted)
        Store(device.Mapping, 64, 3);          // two: 0, 3 (evicted)
        Store(device.Mapping, 128, 4);         // two: 0, 4 (evicted)
        CrashState crash = device.Crash();
        Assert.Equal(12, crash.CountImages());
        Assert.Equal(2, crash.CountImages(includeEviction: false));
        var seen = new HashSet<(ulong, ulong, ulong)>();
        for (ulong i = 0; i < 12; i++)
        {
            ReadOnlySpan<byte> image = crash.CreateImage(ImageStrategy.Exhaustive, i).Data.Span;
            Assert.True(seen.Add((WordOf(image, 0), WordOf(image, 64), WordOf(image, 128))));
        }
        Assert.Equal(12, seen.Count);
        Assert.Throws<ArgumentOutOfRangeException>("seed", () => crash.CreateImage(ImageStrategy.Exhaustive, 12));
    }

    [Fact]
    public void RandomImagesEvictUnflushedWordsOnlyWhenEvictionIsIncluded()
    {
        using SimulatedDevice device = SimulatedDevice.Create(4096);
        for (int i = 0; i < 16; i++)
        {
            Store(device.Mapping, i * 64, 5);  // never flushed
        }
        CrashState crash = device.Crash();
        bool evicted = false;
        for (ulong seed = 0; seed < 32; seed++)
        {
            ReadOnlySpan<byte> with = crash.CreateImage(ImageStrategy.Random, seed).Data.Span;
            ReadOnlySpan<byte> without = crash.CreateImage(ImageStrategy.Random, seed, includeEviction: false).Data.Span;
            evicted |= with.ContainsAnyExcept((byte)0);
            Assert.False(without.ContainsAnyExcept((byte)0));
        }
        Assert.True(evicted);
    }

    [Fact]
    public void AnImageOpensAsADeviceAndAsAFile()
    {
        using SimulatedDevice device = SimulatedDevice.Create(8192);
        Store(device.Mapping, 4096, 99);
        device.Mapping.Persist(4096, 8);
        Store(device.Mapping, 0, 1);
        CrashImage image = device.Crash().CreateImage(ImageStrategy.NothingSurvived);

        using (SimulatedDevice reopened = image.Open())
        {
            Assert.Equal(99UL, Load(reopened.Mapping, 4096));
            Assert.Equal(0UL, Load(reopened.Mapping, 0));
            Assert.Empty(reopened.Crash().InFlight);
        }

        string path = Path.Combine(Path.GetTempPath(), $"dpmem-image-{Guid.NewGuid():N}");
        try
        {
            image.WriteToFile(path);
            if (!OperatingSystem.IsWindows())
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            }
            using PmemFile file = PmemFile.Open(path, writable: false);
            using DaxMapping map = file.Map(new DaxMappingOptions { ReadOnly = true });
            Assert.Equal(99UL, map.GetReadOnlyRef<ulong>(4096));
            Assert.Equal(8192, map.Length);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void MisuseIsReportedAsWarnings()
    {
        SimulatedDevice device = SimulatedDevice.Create(4096);
        Store(device.Mapping, 0, 1);
        device.Mapping.Persist(0, 8);
        device.Mapping.Persist(0, 8);          // redundant: the line is clean
        device.Mapping.Drain();                 // nothing pending
        Store(device.Mapping, 256, 2);         // never flushed
        Store(device.Mapping, 512, 3);
        device.Mapping.Flush(512, 8);         // flushed, never drained
        device.Dispose();

        SimulatorDiagnostics diagnostics = device.GetDiagnostics();
        Assert.Equal(1, diagnostics.RedundantFlushes);
        Assert.Equal(1, diagnostics.EmptyDrains);
        Assert.Equal(1, diagnostics.NeverFlushedLines);
        Assert.Equal(1, diagnostics.FlushedNeverDrainedLines);
        Assert.Contains(diagnostics.Warnings, w => w.Kind == SimulatorWarningKind.NeverFlushed && w.Offset == 256);
        Assert.Contains(diagnostics.Warnings, w => w.Kind == SimulatorWarningKind.FlushedNeverDrained && w.Offset == 512);
        Assert.Contains("1 redundant flushes", diagnostics.Summary(), StringComparison.Ordinal);
    }

    [Fact]
    public void WarningsKeepTheirCountsButOnlyTheFirstExamples()
    {
        using SimulatedDevice device = SimulatedDevice.Create(8192);
        for (int i = 0; i < 100; i++)
        {
            Store(device.Mapping, i * 64, 1);
        }
        Assert.Equal(100, device.CheckUnflushedStores());
        SimulatorDiagnostics diagnostics = device.GetDiagnostics();
        Assert.Equal(100, diagnostics.NeverFlushedLines);
        Assert.Equal(16, diagnostics.Warnings.Count(w => w.Kind == SimulatorWarningKind.NeverFlushed));

        device.Mapping.Persist(0, 100 * 64);
        Assert.Equal(0, device.CheckUnflushedStores());    // a new check replaces the old findings
        Assert.Equal(0, device.GetDiagnostics().NeverFlushedLines);
        Assert.Empty(device.GetDiagnostics().Warnings);
    }

    [Fact]
    public void CorrectPersistenceProducesNoWarnings()
    {
        SimulatedDevice device = SimulatedDevice.Create(4096);
        for (int i = 0; i < 8; i++)
        {
            Store(device.Mapping, i * 64, (ulong)i + 1);
            device.Mapping.Persist(i * 64, 8);
        }
        device.Dispose();
        SimulatorDiagnostics diagnostics = device.GetDiagnostics();
        Assert.Empty(diagnostics.Warnings);
        Assert.Equal(8, diagnostics.Drains);
    }

    [Fact]
    public void DisposingTheMappingInsteadOfTheDeviceIsReportedNotHidden()
    {
        SimulatedDevice device = SimulatedDevice.Create(4096);
        Store(device.Mapping, 0, 1);
        device.Mapping.Dispose();
        device.Dispose();
        SimulatorWarning warning = Assert.Single(device.GetDiagnostics().Warnings);
        Assert.Equal(SimulatorWarningKind.MappingDisposedByCaller, warning.Kind);
    }

    [Fact]
    public void TheDeviceIsUnusableAfterDispose()
    {
        SimulatedDevice device = SimulatedDevice.Create(4096);
        DaxMapping map = device.Mapping;
        device.Dispose();
        Assert.True(map.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => device.Crash());
    }
}
