using DirectPmem.Mapping;
using DirectPmem.Storage.Transactions;
using Xunit;

namespace DirectPmem.Storage.Tests;

/// <summary>
/// Issue 21 section 2: a verifier must not erase the evidence of a crash. Each structure is left as a crash leaves
/// it (a pool in use, a log whose records run past its lazily persisted tail word, a heap with a transaction in
/// flight), inspected, and its bytes compared before and after; then the library's own open of a copy shows that
/// there was evidence to erase (it writes: the in-use mark, the tail word, the rollback).
/// </summary>
public sealed class InspectionKeepsEvidenceTests
{
    private const string Layout = "evidence";
    private const long PoolSize = 4L << 20;

    [Fact]
    public void InspectingACrashedPoolWritesNothingWhileOpeningItDoes()
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(PoolSize);
        TestPools.Create(mapping, Layout); // never disposed: a crash while in use
        byte[] crashed = Snapshot(mapping);

        PoolInspection inspection = PoolInspector.InspectPool(mapping, Layout);
        Assert.False(inspection.WasCleanlyClosed);
        Assert.Equal(crashed, Snapshot(mapping));

        using DaxMapping copy = CopyOf(crashed);
        using (PmemPool opened = PmemPool.Open(copy, Layout))
        {
            Assert.True(opened.NeedsRecovery);
        }
        Assert.NotEqual(crashed, Snapshot(copy));
    }

    [Fact]
    public void InspectingACrashedLogWritesNothingWhileOpeningItDoes()
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(PoolSize);
        PmemPool pool = TestPools.Create(mapping, Layout);
        PmemLog log = PmemLog.Create(pool, pool.DataOffset, 1L << 20);
        for (int seq = 0; seq < 100; seq++)
        {
            log.Append(LogTests.Payload(seq, 300)); // past the tail word, which is persisted lazily: recovery scans for them
        }
        long tail = log.Tail;
        byte[] crashed = Snapshot(mapping); // neither the log nor the pool is disposed: a crash now

        LogInspection inspection = PmemLog.Inspect(mapping, pool.DataOffset, pool.DataOffset);
        Assert.True(inspection.IsValid, string.Join("; ", inspection.Problems));
        Assert.Equal(100, inspection.Records);
        Assert.Equal(tail, inspection.Tail);
        Assert.True(inspection.TailWord <= inspection.Tail);
        Assert.Equal(crashed, Snapshot(mapping));

        using DaxMapping copy = CopyOf(crashed);
        using (PmemPool reopened = PmemPool.Open(copy, Layout))
        using (PmemLog recovered = PmemLog.Open(reopened, reopened.DataOffset))
        {
            Assert.Equal(tail, recovered.Tail);
        }
        Assert.NotEqual(crashed, Snapshot(copy));
    }

    [Fact]
    public void InspectingAHeapWithATransactionInFlightWritesNothingWhileOpeningItRollsBack()
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(PoolSize);
        PmemPool pool = TestPools.Create(mapping, Layout);
        TransactionalHeap heap = pool.CreateHeap("heap", 1L << 20, new TransactionalHeapOptions { LaneCount = 2, ObjectSize = 64 });
        Transaction tx = heap.Begin();
        tx.Modify(heap.RootOffset, 64).Fill(0x5A);
        long heapOffset = heap.RegionOffset;
        byte[] crashed = Snapshot(mapping); // the transaction neither committed nor rolled back: a crash now

        HeapInspection inspection = PoolInspector.InspectHeap(mapping, heapOffset, heap.RegionLength);
        Assert.Empty(inspection.Problems);
        Assert.Equal(1, inspection.Lanes.Sum(l => l.PendingEntries));
        Assert.Equal(crashed, Snapshot(mapping));

        using DaxMapping copy = CopyOf(crashed);
        using (PmemPool reopened = PmemPool.Open(copy, Layout))
        using (TransactionalHeap recovered = reopened.OpenHeap("heap"))
        {
            Assert.True(recovered.Recovery.RolledBack);
            Assert.Equal(0, copy.GetReadOnlyRef<byte>(heap.RootOffset));
        }
        Assert.NotEqual(crashed, Snapshot(copy));
    }

    [Fact]
    public void InspectingAHeapLeftAfterRedoCommitsCountsTheReplaysWritesNothingAndTheOpenReplaysThemOnce()
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(PoolSize);
        PmemPool pool = TestPools.Create(mapping, Layout);
        TransactionalHeap heap = pool.CreateHeap("heap", 1L << 20, new TransactionalHeapOptions { LaneCount = 1, ObjectSize = 64 });
        for (int i = 0; i < 3; i++)
        {
            using Transaction tx = heap.Begin();
            tx.Write(heap.RootOffset + 64 * i, [0x11, 0x22, (byte)i]);
            tx.Write(heap.RootOffset + 1024, [(byte)i]);
            tx.Commit(); // the heap is never disposed: the last two commits stay replayable
        }
        long heapOffset = heap.RegionOffset;
        byte[] crashed = Snapshot(mapping);

        HeapInspection inspection = PoolInspector.InspectHeap(mapping, heapOffset, heap.RegionLength);
        Assert.Empty(inspection.Problems);
        HeapLaneInspection lane = Assert.Single(inspection.Lanes);
        Assert.Equal(2, lane.CommitsToReplay);
        Assert.Equal(4, lane.EntriesToReplay);
        Assert.Equal(0, lane.PendingEntries);
        Assert.Equal(crashed, Snapshot(mapping));

        using DaxMapping copy = CopyOf(crashed);
        using (PmemPool reopened = PmemPool.Open(copy, Layout))
        using (TransactionalHeap recovered = reopened.OpenHeap("heap"))
        {
            Assert.Equal(2, recovered.Recovery.CommitsReplayed);
            Assert.Equal(4, recovered.Recovery.EntriesReplayed);
            Assert.False(recovered.Recovery.RolledBack);
            Assert.Equal(2, copy.GetReadOnlyRef<byte>(heap.RootOffset + 1024));
        }
        Assert.Equal(0, Assert.Single(PoolInspector.InspectHeap(copy, heapOffset, heap.RegionLength).Lanes).CommitsToReplay);
    }

    private static byte[] Snapshot(DaxMapping mapping) => mapping.GetReadOnlySpan(0, (int)mapping.Length).ToArray();

    private static DaxMapping CopyOf(byte[] image)
    {
        DaxMapping copy = DaxMapping.CreateAnonymous(image.Length);
        image.CopyTo(copy.GetSpan(0, image.Length));
        return copy;
    }
}
