using DirectPmem.Mapping;
using Xunit;
using static DirectPmem.Testing.Tests.Pm;

namespace DirectPmem.Testing.Tests;

/// <summary>The simulator never loses what was persisted and drained, and never invents values.</summary>
public sealed class FaithfulnessTests
{
    private const int Words = 512;          // 4 KiB of words over a 8 KiB device
    private const int Steps = 200;

    /// <summary>A seeded workload of stores, persists and flush-then-drain, with a model of what is durable after each drain.</summary>
    private static void RunWorkload(DaxMapping map, int seed, List<ulong[]> durableAfterDrain, List<ulong[]> volatileAtDrain)
    {
        var random = new Random(seed);
        ulong[] volatileModel = new ulong[Words];
        ulong[] durable = new ulong[Words];
        var flushed = new Dictionary<int, ulong[]>();   // line -> its 8 words at the flush
        durableAfterDrain.Add((ulong[])durable.Clone());
        for (int step = 0; step < Steps; step++)
        {
            int op = random.Next(10);
            if (op < 6)
            {
                int w = random.Next(Words);
                ulong value = (ulong)random.NextInt64() | 1;
                Store(map, w * 8L, value);
                volatileModel[w] = value;
            }
            else if (op < 9)
            {
                int first = random.Next(Words);
                int count = random.Next(1, 24);
                count = Math.Min(count, Words - first);
                for (int line = first / 8; line <= (first + count - 1) / 8; line++)
                {
                    flushed[line] = volatileModel.AsSpan(line * 8, 8).ToArray();
                }
                if (op == 8)
                {
                    map.Flush(first * 8L, count * 8L);
                    continue;                // a flush without drain: durable only at the next drain
                }
                map.Persist(first * 8L, count * 8L);
                Commit();
            }
            else
            {
                map.Drain();
                Commit();
            }
        }

        void Commit()
        {
            volatileAtDrain.Add((ulong[])volatileModel.Clone());
            foreach ((int line, ulong[] words) in flushed)
            {
                words.CopyTo(durable, line * 8);
            }
            flushed.Clear();
            durableAfterDrain.Add((ulong[])durable.Clone());
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void EverythingPersistedAndDrainedBeforeTheCrashIsInEveryImage(int seed)
    {
        var model = new List<ulong[]>();
        var volatileModel = new List<ulong[]>();
        using (SimulatedDevice counting = SimulatedDevice.Create(8192))
        {
            RunWorkload(counting.Mapping, seed, model, volatileModel);
            Assert.Equal(model.Count - 1, counting.DrainCount);
        }
        int drains = model.Count - 1;
        Assert.True(drains > 20, $"the workload issued only {drains} drains");

        int images = 0;
        for (int point = 1; point <= drains; point += 3)
        {
            using SimulatedDevice device = SimulatedDevice.Create(8192);
            device.CrashAtDrain = point;
            RunWorkload(device.Mapping, seed, [], []);
            CrashState crash = device.CapturedCrash!;
            Assert.NotNull(crash);
            ulong[] durable = model[point - 1];        // what drains 1..point-1 made durable
            ulong[] stored = volatileModel[point - 1]; // what the program had stored when drain `point` was issued
            var inFlight = crash.InFlight.ToDictionary(w => w.Offset);

            foreach (ImageStrategy strategy in new[] { ImageStrategy.NothingSurvived, ImageStrategy.FlushedSurvived, ImageStrategy.EverythingSurvived, ImageStrategy.Random, ImageStrategy.Random })
            {
                CrashImage image = crash.CreateImage(strategy, (ulong)(images * 7919));
                images++;
                ReadOnlySpan<byte> bytes = image.Data.Span;
                for (int w = 0; w < Words; w++)
                {
                    ulong value = WordOf(bytes, w * 8L);
                    if (inFlight.TryGetValue(w * 8L, out InFlightWord word))
                    {
                        // An uncertain word: its durable value, its flushed value, or its newest one.
                        Assert.Equal(durable[w], word.Old);
                        Assert.Equal(stored[w], word.Current);
                        Assert.True(value == word.Old || value == word.Flushed || value == word.Current);
                    }
                    else
                    {
                        // A settled word: exactly what was persisted and drained.
                        Assert.Equal(durable[w], value);
                        Assert.Equal(stored[w], value);
                    }
                }
            }
        }
        Assert.True(images >= 30);
    }

    [Fact]
    public void ASweepOfACorrectWorkloadSeesEveryDurableWordAtEveryCrashPoint()
    {
        // Each step writes word i and persists it; recovery checks the prefix property: the words
        // persisted so far form an unbroken prefix (no later word durable without an earlier one).
        CrashTestResult result = new CrashTest
        {
            DeviceLength = 4096,
            Workload = map =>
            {
                for (int i = 0; i < 40; i++)
                {
                    Store(map, i * 64L, (ulong)i + 1);
                    map.Persist(i * 64L, 8);
                }
            },
            Recover = map =>
            {
                int i = 0;
                while (i < 40 && Load(map, i * 64L) == (ulong)i + 1)
                {
                    i++;
                }
                for (int j = i + 1; j < 40; j++)
                {
                    Assert.Equal(0UL, Load(map, j * 64L));
                }
            },
        }.Run();
        Assert.True(result.Passed, result.Summary());
        Assert.Equal(41, result.Statistics.CrashPoints);
        Assert.Equal(1, result.Statistics.MaxInFlightWords);
        Assert.Equal(2 * 40 + 1, result.Statistics.ImagesTried);   // two images per barrier, one at the end
    }

    [Fact]
    public void ANonDeterministicWorkloadIsRefusedWithAClearMessage()
    {
        int runs = 0;
        var test = new CrashTest
        {
            DeviceLength = 4096,
            Workload = map =>
            {
                int persists = ++runs == 1 ? 3 : 1;
                for (int i = 0; i < persists; i++)
                {
                    Store(map, i * 64L, 1);
                    map.Persist(i * 64L, 8);
                }
            },
            Recover = _ => { },
        };
        InvalidOperationException error = Assert.Throws<InvalidOperationException>(() => test.Run());
        Assert.Contains("deterministic", error.Message, StringComparison.Ordinal);
    }
}
