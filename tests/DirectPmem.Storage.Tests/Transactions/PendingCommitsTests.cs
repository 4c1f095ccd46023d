using DirectPmem.Storage.Transactions;
using Xunit;

namespace DirectPmem.Storage.Tests.Transactions;

/// <summary>The per-lane slots that say which unconfirmed commit covers which bytes (what decides a cross-lane confirmation).</summary>
public sealed class PendingCommitsTests
{
    private static RangeSet Ranges(params (long Start, long End)[] ranges)
    {
        var set = new RangeSet();
        foreach ((long start, long end) in ranges)
        {
            set.Add(start, end);
        }
        return set;
    }

    [Fact]
    public void OnlyACommitThatDeclaredAByteOfTheRangesIsReported()
    {
        var pending = new PendingCommits(2);
        RangeSet mine = Ranges((100, 200));
        Assert.Equal(0, pending.Overlapping(0, mine));               // nothing pending
        pending.Publish(0, 7, Ranges((0, 100), (200, 300)));          // touching on both sides
        Assert.Equal(7, pending.Generation(0));
        Assert.Equal(0, pending.Overlapping(0, mine));
        Assert.Equal(7, pending.Overlapping(0, Ranges((199, 201))));
        Assert.Equal(0, pending.Overlapping(1, mine));                // another lane's slot
        pending.Clear(0);
        Assert.Equal(0, pending.Generation(0));
        Assert.Equal(0, pending.Overlapping(0, Ranges((0, 300))));
    }

    // Each commit replaces the footprint with what recovery may still touch: a redo commit whose
    // predecessor is a redo commit the lane has not settled publishes both (recovery may replay both),
    // and the next one drops the older, whose record it overwrote.
    [Fact]
    public void ACommitPublishesItsOwnRangesAndThoseOfAPredecessorRecoveryMayStillReplay()
    {
        var pending = new PendingCommits(1);
        pending.Publish(0, 1, Ranges((0, 8)));
        pending.Publish(0, 2, Ranges((64, 72)), Ranges((0, 8)));
        Assert.Equal(2, pending.Overlapping(0, Ranges((0, 8))));
        Assert.Equal(2, pending.Overlapping(0, Ranges((64, 72))));
        var footprint = new RangeSet();
        Assert.True(pending.TryCopyFootprint(0, 2, footprint));
        Assert.Equal(2, footprint.Count);
        Assert.False(pending.TryCopyFootprint(0, 1, footprint)); // read with another generation: read again
        pending.Publish(0, 3, Ranges((128, 136)), Ranges((64, 72)));
        Assert.Equal(0, pending.Overlapping(0, Ranges((0, 8))));
        Assert.Equal(3, pending.Overlapping(0, Ranges((64, 72))));
        pending.Clear(0);
        Assert.Equal(0, pending.Overlapping(0, Ranges((64, 72))));
    }

    [Fact]
    public void MoreRangesThanASlotHoldsOverlapEverything()
    {
        var pending = new PendingCommits(1);
        var many = new RangeSet();
        for (int i = 0; i <= PendingCommits.MaxRanges; i++)
        {
            many.Add(i * 16L, i * 16L + 8);
        }
        pending.Publish(0, 5, many);
        Assert.Equal(5, pending.Overlapping(0, Ranges((1_000_000, 1_000_008))));
        pending.Clear(0);
        pending.Publish(0, 6, Ranges((0, 8)));
        Assert.Equal(0, pending.Overlapping(0, Ranges((1_000_000, 1_000_008))));
    }
}
