using System.Globalization;
using DirectPmem.Mapping;
using Xunit;
using static DirectPmem.Testing.Tests.Pm;

namespace DirectPmem.Testing.Tests;

/// <summary>
/// Deliberately broken persistence protocols the simulator must catch, each beside its correct
/// version, which must pass across thousands of images.
/// </summary>
public sealed class BrokenProtocolTests
{
    // ---- 1. Publishing a pointer before persisting the data it points to ----

    private const long Root = 0;            // the pointer: 0 = nothing published
    private const long Node = 4096;         // the data it points to
    private const int NodeWords = 64;

    private static ulong NodeWord(int i) => 0xDA7A_0000_0000_0000UL + (uint)(i + 1);

    private static void WriteNode(DaxMapping map)
    {
        for (int i = 0; i < NodeWords; i++)
        {
            Store(map, Node + i * 8, NodeWord(i));
        }
    }

    private static void PublishBeforePersistingData(DaxMapping map)
    {
        WriteNode(map);
        Store(map, Root, Node);
        map.Persist(Root, 8);               // BUG: the pointer is durable before what it points to
        map.Persist(Node, NodeWords * 8);
    }

    private static void PersistDataThenPublish(DaxMapping map)
    {
        WriteNode(map);
        map.Persist(Node, NodeWords * 8);
        Store(map, Root, Node);
        map.Persist(Root, 8);
    }

    private static void RecoverPublishedNode(DaxMapping map)
    {
        ulong root = Load(map, Root);
        if (root == 0)
        {
            return;                         // nothing published: a valid state
        }
        Assert.Equal((ulong)Node, root);
        for (int i = 0; i < NodeWords; i++)
        {
            Assert.Equal(NodeWord(i), Load(map, Node + i * 8));
        }
    }

    [Fact]
    public void PublishingAPointerBeforePersistingItsDataIsCaught()
    {
        var test = new CrashTest { Workload = PublishBeforePersistingData, Recover = RecoverPublishedNode };
        CrashTestResult result = test.Run();

        CrashFailure failure = AssertCaught(result, test);
        // At the failing crash the pointer made it and at least one data word did not.
        CrashImage image = failure.Image;
        ReadOnlySpan<byte> bytes = image.Data.Span;
        Assert.Equal((ulong)Node, WordOf(bytes, Root));
        Assert.Contains(Enumerable.Range(0, NodeWords), i => WordOf(image.Data.Span, Node + i * 8) == 0);
        Assert.Contains("word 0x1000:", failure.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void PersistingTheDataBeforePublishingThePointerSurvivesThousandsOfImages()
    {
        CrashTestResult result = new CrashTest
        {
            Workload = PersistDataThenPublish,
            Recover = RecoverPublishedNode,
            RandomImages = 2500,
        }.Run();

        Assert.True(result.Passed, result.Summary());
        Assert.Equal(2, result.Statistics.Drains);
        Assert.Equal(3, result.Statistics.CrashPoints);
        Assert.True(result.Statistics.ImagesTried >= 2000, result.Statistics.ToString());
        Assert.Equal(NodeWords, result.Statistics.MaxInFlightWords);
        Assert.Empty(result.Diagnostics.Warnings);
    }

    // ---- 2. A two-word record with no checksum ----

    private const int Records = 128;
    private const long RecordSize = 32;     // a, b, checksum, unused

    private static ulong Partner(ulong a) => a * 0x0101_0101UL + 17;

    private static void WriteRecords(DaxMapping map, ulong generation, bool checksum)
    {
        for (int r = 0; r < Records; r++)
        {
            long at = r * RecordSize;
            ulong a = generation * 1000 + (ulong)r + 1;
            Store(map, at, a);
            Store(map, at + 8, Partner(a));
            if (checksum)
            {
                Store(map, at + 16, Checksum(a, Partner(a)));
            }
        }
        map.Persist(0, Records * RecordSize);
    }

    private static void RecoverRecords(DaxMapping map, bool checksum)
    {
        for (int r = 0; r < Records; r++)
        {
            long at = r * RecordSize;
            ulong a = Load(map, at);
            ulong b = Load(map, at + 8);
            if (checksum && Load(map, at + 16) != Checksum(a, b))
            {
                continue;                   // a torn record is detected and dropped
            }
            Assert.True(b == Partner(a), string.Create(CultureInfo.InvariantCulture,
                $"record {r} recovered torn: a={a}, b={b}"));
        }
    }

    [Fact]
    public void ATwoWordRecordWithoutAChecksumIsCaught()
    {
        var test = new CrashTest
        {
            Setup = map => WriteRecords(map, 1, checksum: false),
            Workload = map => WriteRecords(map, 2, checksum: false),
            Recover = map => RecoverRecords(map, checksum: false),
        };
        CrashTestResult result = test.Run();
        CrashFailure failure = AssertCaught(result, test);
        Assert.Contains("torn", failure.Error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ATwoWordRecordWithAChecksumSurvivesThousandsOfImages()
    {
        CrashTestResult result = new CrashTest
        {
            Setup = map => WriteRecords(map, 1, checksum: true),
            Workload = map => WriteRecords(map, 2, checksum: true),
            Recover = map => RecoverRecords(map, checksum: true),
            RandomImages = 2500,
        }.Run();
        Assert.True(result.Passed, result.Summary());
        Assert.True(result.Statistics.ImagesTried >= 2000, result.Statistics.ToString());
        Assert.Equal(Records * 3, result.Statistics.MaxInFlightWords);
    }

    // ---- 3. Flushing without a drain before the commit ----

    private const long Flag = 0;            // 1 = the data below is complete
    private const long Data = 256;
    private const int DataWords = 16;

    private static void FlushDataThenCommit(DaxMapping map, bool drainBeforeCommit)
    {
        for (int i = 0; i < DataWords; i++)
        {
            Store(map, Data + i * 8, NodeWord(i));
        }
        map.Flush(Data, DataWords * 8);
        if (drainBeforeCommit)
        {
            map.Drain();
        }
        // Without the drain the write-backs above are not ordered before the flag's: the flag
        // can reach the media first.
        Store(map, Flag, 1);
        map.Persist(Flag, 8);
    }

    private static void RecoverCommitted(DaxMapping map)
    {
        if (Load(map, Flag) != 1)
        {
            return;
        }
        for (int i = 0; i < DataWords; i++)
        {
            Assert.Equal(NodeWord(i), Load(map, Data + i * 8));
        }
    }

    [Fact]
    public void PersistingWithoutADrainBeforeTheCommitIsCaught()
    {
        var test = new CrashTest
        {
            Workload = map => FlushDataThenCommit(map, drainBeforeCommit: false),
            Recover = RecoverCommitted,
        };
        CrashTestResult result = test.Run();
        CrashFailure failure = AssertCaught(result, test);
        Assert.True(failure.Image.State.IsBeforeDrain);
        Assert.Equal(1, failure.Image.State.DrainNumber);
        Assert.Contains("word 0x0:", failure.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void DrainingBeforeTheCommitSurvivesThousandsOfImages()
    {
        CrashTestResult result = new CrashTest
        {
            Workload = map => FlushDataThenCommit(map, drainBeforeCommit: true),
            Recover = RecoverCommitted,
            RandomImages = 2500,
        }.Run();
        Assert.True(result.Passed, result.Summary());
        Assert.Equal(2, result.Statistics.Drains);
        Assert.True(result.Statistics.ImagesTried >= 2000, result.Statistics.ToString());
    }

    [Fact]
    public void AnAcknowledgedWriteThatWasFlushedButNeverDrainedIsCaughtAtTheEndOfTheRun()
    {
        // The operation returns (acknowledges) after a flush with no drain at all.
        var test = new CrashTest
        {
            Workload = map =>
            {
                Store(map, Data, 42);
                map.Flush(Data, 8);
            },
            Recover = map => Assert.Equal(42UL, Load(map, Data)),
        };
        CrashTestResult result = test.Run();
        CrashFailure failure = AssertCaught(result, test);
        Assert.False(failure.Image.State.IsBeforeDrain);
        Assert.Equal(1, result.Diagnostics.FlushedNeverDrainedLines);
    }

    /// <summary>
    /// The sweep failed, the report names the seed, the crash point and the words, and replaying
    /// exactly that image from the report fails again.
    /// </summary>
    private static CrashFailure AssertCaught(CrashTestResult result, CrashTest test)
    {
        Assert.False(result.Passed, "the simulator did not catch the broken protocol: " + result.Summary());
        CrashFailure failure = result.Failures[0];
        TestContext.Current.TestOutputHelper?.WriteLine(result.Summary());
        string report = failure.ToString();
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"seed 0x{failure.Image.Seed:x}"), report, StringComparison.Ordinal);
        Assert.Contains("crash point: ", report, StringComparison.Ordinal);
        Assert.NotEmpty(failure.Image.State.InFlight);
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"word 0x{failure.Image.State.InFlight[0].Offset:x}:"), report, StringComparison.Ordinal);

        CrashConsistencyException thrown = Assert.Throws<CrashConsistencyException>(result.ThrowIfFailed);
        Assert.Contains(report, thrown.Message, StringComparison.Ordinal);

        CrashTestResult replay = new CrashTest
        {
            Setup = test.Setup,
            Workload = test.Workload,
            Recover = test.Recover,
            OnlyCrashPoint = failure.CrashPoint,
            OnlyStrategy = failure.Image.Strategy,
            OnlySeed = failure.Image.Seed,
        }.Run();
        Assert.Equal(1, replay.Statistics.ImagesTried);
        Assert.False(replay.Passed);
        Assert.Equal(failure.Image.Data.ToArray(), replay.Failures[0].Image.Data.ToArray());
        return failure;
    }
}
