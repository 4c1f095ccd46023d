using DirectPmem.Mapping;
using DirectPmem.Storage.Transactions;
using DirectPmem.Testing;
using Xunit;
using static DirectPmem.Storage.Tests.Transactions.HeapState;

namespace DirectPmem.Storage.Tests.Transactions;

/// <summary>
/// Simulated power failures at every drain of transactional workloads: every image must recover to
/// the state after the acknowledged transactions, or after the one in flight too, never to a mix;
/// aborted transactions never show; no object is leaked or allocated twice.
/// </summary>
public sealed class TransactionCrashTests(ITestOutputHelper output)
{
    // Single- and multi-range transactions: commit, explicit abort, dispose without commit, exception.
    internal static void Ranges(TransactionalHeap heap, Action ack)
    {
        long r = heap.RootOffset;
        using (Transaction tx = heap.Begin())
        {
            Fill(tx.Modify(r, 64), 1);
            tx.Commit();
        }
        ack();
        using (Transaction tx = heap.Begin())
        {
            tx.AddRange(r + 64, 64);
            tx.AddRange(r + 128, 64);   // adjacent
            tx.AddRange(r + 64, 64);    // declared twice
            tx.AddRange(r + 256, 100);
            tx.AddRange(r + 300, 100);  // overlapping
            Fill(tx.GetSpan(r + 64, 128), 2);
            Fill(tx.GetSpan(r + 256, 144), 3);
            tx.Commit();
        }
        ack();
        using (Transaction tx = heap.Begin())
        {
            Fill(tx.Modify(r, 200), 4);
            tx.Abort();
        }
        ack();
        using (Transaction tx = heap.Begin())
        {
            Fill(tx.Modify(r + 8, 8), 5);
            Fill(tx.Modify(r + 400, 50), 5);
            // disposed without commit: rolled back
        }
        ack();
        try
        {
            using Transaction tx = heap.Begin();
            Fill(tx.Modify(r + 100, 300), 6);
            throw new InvalidOperationException("failure inside the transaction");
        }
        catch (InvalidOperationException)
        {
        }
        ack();
        using (Transaction tx = heap.Begin())
        {
            tx.GetRef<long>(r + 8) = 0x1122334455667788;
            tx.GetRef<long>(r + 504) = -1;
            tx.AddRange(r + 32, 16);
            Fill(tx.GetSpan(r + 32, 16), 7);
            tx.Commit();
        }
        ack();
    }

    // Allocation and free: objects linked from root slots, so a leak or a dangling slot is visible.
    internal static void Objects(TransactionalHeap heap, Action ack)
    {
        long r = heap.RootOffset;
        using (Transaction tx = heap.Begin())
        {
            for (int i = 0; i < 3; i++)
            {
                long o = tx.Allocate();
                Fill(tx.GetSpan(o, 64), (byte)(0x10 + i));
                tx.GetRef<long>(r + 8 * i) = o;
            }
            tx.Commit();
        }
        ack();
        using (Transaction tx = heap.Begin())
        {
            tx.Free(heap.Mapping.GetReadOnlyRef<long>(r + 8));
            long o = tx.Allocate();
            Fill(tx.GetSpan(o, 64), 0x20);
            tx.GetRef<long>(r + 8) = o;
            tx.Commit();
        }
        ack();
        using (Transaction tx = heap.Begin())
        {
            long a = tx.Allocate();
            long b = tx.Allocate();
            Fill(tx.GetSpan(a, 64), 0x30);
            Fill(tx.GetSpan(b, 64), 0x31);
            tx.GetRef<long>(r + 24) = a;
            tx.Free(heap.Mapping.GetReadOnlyRef<long>(r));
            tx.GetRef<long>(r) = 0;
            // rolled back: a and b free again, slot 0's object still allocated
        }
        ack();
        using (Transaction tx = heap.Begin())
        {
            tx.Free(heap.Mapping.GetReadOnlyRef<long>(r));
            tx.Free(heap.Mapping.GetReadOnlyRef<long>(r + 16));
            tx.GetRef<long>(r) = 0;
            tx.GetRef<long>(r + 16) = 0;
            long temporary = tx.Allocate();
            Fill(tx.GetSpan(temporary, 64), 0x40);
            tx.Free(temporary);
            tx.Commit();
        }
        ack();
        using (Transaction tx = heap.Begin())
        {
            long o = tx.Allocate();
            Fill(tx.GetSpan(o, 64), 0x50);
            tx.GetRef<long>(r + 24) = o;
            tx.Commit();
        }
        ack();
    }

    // Two lanes in turn: a commit whose bytes the other lane then leaves alone (it stays unconfirmed,
    // judged by its data hash, while the other lane changes its own bytes in place), then changes
    // in part (the other lane must confirm it first), and a commit no later transaction confirms.
    internal static void CrossLane(TransactionalHeap heap, Action ack)
    {
        long r = heap.RootOffset;
        for (int round = 0; round < 2; round++)
        {
            int heldLane;
            using (Transaction held = heap.Begin()) // holds a lane, so that the next Begin takes the other
            {
                heldLane = held.Lane;
                using (Transaction tx = heap.Begin())
                {
                    Assert.NotEqual(heldLane, tx.Lane);
                    Fill(tx.Modify(r, 128), (byte)(0x10 + round));
                    Fill(tx.Modify(r + 256, 64), (byte)(0x20 + round));
                    tx.Commit();
                }
                ack();
                Fill(held.Modify(r + 384, 64), (byte)(0x30 + round)); // bytes the other lane's commit did not declare
                held.Commit();
            }
            ack();
            using (Transaction tx = heap.Begin())
            {
                Assert.Equal(heldLane, tx.Lane);
                Fill(tx.Modify(r + 64, 32), (byte)(0x40 + round)); // inside the other lane's unconfirmed commit
                tx.GetRef<long>(r + 448) = round + 1;
                tx.Commit();
            }
            ack();
        }
    }

    // A transaction that declares ranges but changes nothing in place, after a commit of the same lane:
    // its commit record goes where the earlier, still unconfirmed, record is. The earlier commit must
    // survive a crash that tears the new record before the new transaction's undo entries are durable.
    internal static void DeclareOnly(TransactionalHeap heap, Action ack)
    {
        long r = heap.RootOffset;
        for (int round = 1; round <= 3; round++)
        {
            using (Transaction tx = heap.Begin())
            {
                Fill(tx.Modify(r + 64 * round, 64), (byte)(10 + round));
                tx.Commit();
            }
            ack();
            using (Transaction tx = heap.Begin())
            {
                tx.AddRange(r, 64);
                tx.AddRange(r + 64 * round, 64);
                tx.Commit(); // declared, never written
            }
            ack();
        }
    }

    // The redo path (Transaction.Write only): one fence per commit, the home bytes applied after it and
    // made durable by the lane's next commit. 1 and 4 ranges, a range written twice, an abort, a dispose
    // without commit (neither writes anything in place), then commits after them on the same lane. The
    // last commit is left with its home bytes unflushed-and-undrained: the final crash point is the
    // crash between a commit fence and the next commit.
    internal static void Redo(TransactionalHeap heap, Action ack)
    {
        long r = heap.RootOffset;
        Span<byte> bytes = stackalloc byte[64];
        for (int round = 1; round <= 3; round++)
        {
            using (Transaction tx = heap.Begin())
            {
                bytes.Fill((byte)round);
                tx.Write(r + 64 * round, bytes);
                tx.Commit();
            }
            ack();
        }
        using (Transaction tx = heap.Begin())
        {
            for (int k = 0; k < 4; k++)
            {
                bytes.Fill((byte)(0x40 + k));
                tx.Write(r + 128 * k + 8, bytes);
            }
            bytes[..16].Fill(0x4F);
            tx.Write(r + 16, bytes[..16]); // inside the first range, written again: the later bytes win
            tx.Commit();
        }
        ack();
        using (Transaction tx = heap.Begin())
        {
            bytes.Fill(0xAB);
            tx.Write(r, bytes);
            tx.Write(r + 256, bytes);
            tx.Abort();
        }
        ack();
        using (Transaction tx = heap.Begin())
        {
            bytes.Fill(0xCD);
            tx.Write(r + 64, bytes);
            // disposed without commit: nothing changes
        }
        ack();
        using (Transaction tx = heap.Begin())
        {
            bytes.Fill(0x55);
            tx.Write(r + 448, bytes);
            tx.Write(r + 200, bytes[..24]);
            tx.Commit();
        }
        ack();
    }

    // Redo and undo in one transaction and in turn on one lane: Write then a span over other bytes (the
    // redo entries get snapshots, are applied in place after the drain and become inert), Write then a
    // span over the bytes written, a mixed transaction that rolls back, an undo commit right after a
    // redo commit (the lane settles the redo commit first), and a redo commit after an undo commit.
    internal static void Mixed(TransactionalHeap heap, Action ack)
    {
        long r = heap.RootOffset;
        Span<byte> bytes = stackalloc byte[64];
        using (Transaction tx = heap.Begin())
        {
            bytes.Fill(0x11);
            tx.Write(r, bytes);
            Fill(tx.Modify(r + 128, 64), 0x12);
            tx.Write(r + 256, bytes[..32]);
            tx.Commit();
        }
        ack();
        using (Transaction tx = heap.Begin())
        {
            bytes.Fill(0x21);
            tx.Write(r + 64, bytes);
            Span<byte> written = tx.GetSpan(r + 64, 64);
            if (written[0] != 0x21)
            {
                throw new InvalidDataException("a span over bytes written in the transaction does not show them");
            }
            written[..8].Fill(0x22);
            tx.Commit();
        }
        ack();
        using (Transaction tx = heap.Begin())
        {
            bytes.Fill(0x31);
            tx.Write(r, bytes);
            Fill(tx.Modify(r + 320, 32), 0x32);
            tx.Abort();
        }
        ack();
        using (Transaction tx = heap.Begin())
        {
            bytes.Fill(0x41);
            tx.Write(r + 384, bytes);
            tx.Commit();
        }
        ack();
        using (Transaction tx = heap.Begin())
        {
            Fill(tx.Modify(r + 384, 16), 0x51); // an undo commit over the bytes of the redo commit just before
            tx.Commit();
        }
        ack();
        using (Transaction tx = heap.Begin())
        {
            bytes.Fill(0x61);
            tx.Write(r + 392, bytes[..16]);
            tx.Commit();
        }
        ack();
    }

    // Objects on the redo path: allocated and written in place, linked with Write; freed with a Write
    // of the link; allocated and freed in one transaction; a dispose that gives its object back.
    internal static void RedoObjects(TransactionalHeap heap, Action ack)
    {
        long r = heap.RootOffset;
        Span<byte> link = stackalloc byte[8];
        using (Transaction tx = heap.Begin())
        {
            for (int i = 0; i < 3; i++)
            {
                long o = tx.Allocate();
                Fill(tx.GetSpan(o, 64), (byte)(0x10 + i));
                BitConverter.TryWriteBytes(link, o);
                tx.Write(r + 8 * i, link);
            }
            tx.Commit();
        }
        ack();
        using (Transaction tx = heap.Begin())
        {
            tx.Free(heap.Mapping.GetReadOnlyRef<long>(r + 8));
            long o = tx.Allocate();
            Span<byte> body = stackalloc byte[64];
            body.Fill(0x20);
            tx.Write(o, body); // into a new object: in place
            BitConverter.TryWriteBytes(link, o);
            tx.Write(r + 8, link);
            long temporary = tx.Allocate();
            tx.Free(temporary);
            tx.Commit();
        }
        ack();
        using (Transaction tx = heap.Begin())
        {
            long o = tx.Allocate();
            Fill(tx.GetSpan(o, 64), 0x30);
            BitConverter.TryWriteBytes(link, o);
            tx.Write(r + 24, link);
            // disposed: o is free again
        }
        ack();
        using (Transaction tx = heap.Begin())
        {
            tx.Free(heap.Mapping.GetReadOnlyRef<long>(r));
            link.Clear();
            tx.Write(r, link);
            tx.Commit();
        }
        ack();
        // Objects freed just before are allocated again and written in place under the commit that
        // links them: the commit's entries may reach the media before the objects' lines.
        for (int round = 0; round < 3; round++)
        {
            using Transaction tx = heap.Begin();
            long slot = r + 8 * (round % 2);
            long old = heap.Mapping.GetReadOnlyRef<long>(slot);
            if (old != 0)
            {
                tx.Free(old);
            }
            long o = tx.Allocate();
            Fill(tx.GetSpan(o, 64), (byte)(0x60 + round));
            BitConverter.TryWriteBytes(link, o);
            tx.Write(slot, link);
            tx.Commit();
            ack();
        }
    }

    // Two lanes and redo commits: lane A commits with Write and leaves its home bytes unsettled; lane
    // B then commits bytes A did not write (nothing to settle), then overwrites A's bytes with Write
    // (B must settle A first: recovery replays lanes in no order), then changes A's bytes in place.
    internal static void CrossLaneRedo(TransactionalHeap heap, Action ack)
    {
        long r = heap.RootOffset;
        Span<byte> bytes = stackalloc byte[64];
        for (int round = 0; round < 2; round++)
        {
            int heldLane;
            using (Transaction held = heap.Begin()) // holds a lane, so that the next Begin takes the other
            {
                heldLane = held.Lane;
                using (Transaction tx = heap.Begin())
                {
                    Assert.NotEqual(heldLane, tx.Lane);
                    bytes.Fill((byte)(0x10 + round));
                    tx.Write(r, bytes);
                    tx.Write(r + 256, bytes);
                    tx.Commit();
                }
                ack();
                bytes.Fill((byte)(0x30 + round));
                held.Write(r + 384, bytes); // bytes the other lane's commit did not write
                held.Commit();
            }
            ack();
            using (Transaction held = heap.Begin())
            {
                heldLane = held.Lane;
                using (Transaction tx = heap.Begin())
                {
                    bytes.Fill((byte)(0x40 + round));
                    tx.Write(r + 384, bytes[..32]); // inside the held lane's unsettled commit
                    tx.Write(r + 256, bytes[..8]);  // and the other's: this lane's own previous commit
                    tx.Commit();
                }
                ack();
                Fill(held.Modify(r + 16, 16), (byte)(0x50 + round)); // inside the other lane's commits, in place
                held.Commit();
            }
            ack();
        }
    }

    /// <summary>The states after setup and after each acknowledged transaction, from a run without crashes.</summary>
    private static List<string> ExpectedStates(Action<TransactionalHeap, Action> workload)
    {
        using SimulatedDevice device = SimulatedDevice.Create(Length);
        TransactionalHeap heap = Create(device.Mapping);
        var states = new List<string> { Describe(heap) };
        workload(heap, () => states.Add(Describe(heap)));
        return states;
    }

    private AckSweep.Result Sweep(Action<TransactionalHeap, Action> workload, Action<TransactionalHeap>? extraCheck = null, bool broken = false, bool noCrossLaneConfirm = false, bool noHomeFlush = false)
    {
        bool skipSnapshotDrain = broken;
        broken |= noCrossLaneConfirm | noHomeFlush;
        List<string> expected = ExpectedStates(workload);
        Assert.True(expected.Distinct().Count() >= 3, "the workload changes the state");
        AckSweep.Result result = new AckSweep
        {
            DeviceLength = Length,
            Setup = map => Create(map),
            Workload = (map, ack) =>
            {
                TransactionalHeap heap = Open(map);
                heap.SkipSnapshotDrainForTest = skipSnapshotDrain;
                heap.SkipCrossLaneConfirmForTest = noCrossLaneConfirm;
                heap.SkipHomeFlushForTest = noHomeFlush;
                workload(heap, ack);
            },
            Recover = (map, acked) =>
            {
                TransactionalHeap heap = Open(map);
                ExpectOneOf(Describe(heap), expected, acked);
                extraCheck?.Invoke(heap);
                // Recovery is durable and idempotent: a second open finds nothing more to undo.
                TransactionalHeap again = Open(map);
                if (again.Recovery.RolledBack || Describe(again) != Describe(heap))
                {
                    throw new InvalidDataException("a second recovery changed the state");
                }
            },
        }.Run();
        output.WriteLine($"{result.Drains} drains, {result.Images} images, {result.Acks} acknowledged transactions, {result.Failures.Count} failing");
        if (broken)
        {
            return result;
        }
        result.ThrowIfFailed();
        Assert.True(result.Images > result.Drains);
        return result;
    }

    [Fact]
    public void SingleAndMultiRangeTransactionsAreAllOrNothingAtEveryDrain() => Sweep(Ranges);

    // The negative control: the same sweep over a commit whose snapshots are flushed but never
    // drained before the data is changed in place (the first of the commit's two fences removed)
    // must find images that recover to a mix.
    [Fact]
    public void ASweepCatchesACommitWithoutItsSnapshotFence()
    {
        AckSweep.Result result = Sweep(Ranges, broken: true);
        Assert.NotEmpty(result.Failures);
    }

    [Fact]
    public void CommitsOnTwoLanesAreAllOrNothingAtEveryDrain()
    {
        AckSweep.Result result = Sweep(CrossLane);
        Assert.True(result.Acks >= 6);
    }

    // The negative control of the cross-lane rule: a lane that changes in place bytes of another
    // lane's unconfirmed commit without raising that lane's word first breaks the commit's data
    // hash, and the sweep must find images where recovery rolls the acknowledged commit back.
    [Fact]
    public void ASweepCatchesAnInPlaceChangeThatDoesNotConfirmTheOtherLane()
    {
        AckSweep.Result result = Sweep(CrossLane, noCrossLaneConfirm: true);
        Assert.NotEmpty(result.Failures);
    }

    [Fact]
    public void ATransactionThatDeclaresButNeverWritesLeavesTheLanesEarlierCommitIntactAtEveryDrain() => Sweep(DeclareOnly);

    [Fact]
    public void RedoCommitsOfOneAndFourRangesAbortsAndDisposesAreAllOrNothingAtEveryDrain()
    {
        AckSweep.Result result = Sweep(Redo);
        Assert.True(result.Acks >= 7);
    }

    // The negative control of the lazy apply: redo commits whose home bytes are never flushed (neither
    // by the apply nor by the next commit) survive only as long as recovery can replay them (the lane's
    // last two commits), so the sweep must find images that lose an acknowledged commit. (The simulator
    // has one cache: it cannot show a flush left to another core, only a flush left out.)
    [Fact]
    public void ASweepCatchesRedoCommitsWhoseHomeBytesAreNeverFlushed()
    {
        AckSweep.Result result = Sweep(Redo, noHomeFlush: true);
        Assert.NotEmpty(result.Failures);
    }

    [Fact]
    public void TransactionsMixingWriteAndSpansAreAllOrNothingAtEveryDrain() => Sweep(Mixed);

    [Fact]
    public void RedoCommitsOnTwoLanesThatOverlapAreAllOrNothingAtEveryDrain()
    {
        AckSweep.Result result = Sweep(CrossLaneRedo);
        Assert.True(result.Acks >= 8);
    }

    // The negative control of settling: a lane that commits over (or changes in place) bytes of the
    // other lane's unsettled redo commit without settling it lets recovery replay the older commit
    // over the newer, and the sweep must find it.
    [Fact]
    public void ASweepCatchesARedoCommitOverAnUnsettledCommitOfAnotherLane()
    {
        AckSweep.Result result = Sweep(CrossLaneRedo, noCrossLaneConfirm: true);
        Assert.NotEmpty(result.Failures);
    }

    [Fact]
    public void RedoAllocationAndFreeNeitherLeakNorDoubleAllocateAtEveryDrain() => Sweep(RedoObjects, CheckObjects);

    [Fact]
    public void AllocationAndFreeNeitherLeakNorDoubleAllocateAtEveryDrain() => Sweep(Objects, CheckObjects);

    private static void CheckObjects(TransactionalHeap heap)
    {
        // Every allocated object is linked from a root slot and every linked object is allocated.
        var linked = new HashSet<long>();
        for (int slot = 0; slot < 4; slot++)
        {
            long o = heap.Mapping.GetReadOnlyRef<long>(heap.RootOffset + 8 * slot);
            if (o != 0 && (!heap.IsAllocated(o) || !linked.Add(o)))
            {
                throw new InvalidDataException($"root slot {slot} links 0x{o:x}, which is not allocated or linked twice");
            }
        }
        int allocated = Enumerable.Range(0, heap.ObjectCount).Count(i => heap.IsAllocated(heap.GetObjectOffset(i)));
        if (allocated != linked.Count)
        {
            throw new InvalidDataException($"{allocated} objects allocated but {linked.Count} linked: a leak");
        }
        // The recovered allocator hands out only free objects, all of them, each once.
        var handedOut = new HashSet<long>();
        for (int left = heap.ObjectCount - allocated; left > 0;)
        {
            using Transaction tx = heap.Begin();
            for (int i = 0; i < 16 && left > 0; i++, left--)
            {
                long o = tx.Allocate();
                if (linked.Contains(o) || !handedOut.Add(o))
                {
                    throw new InvalidDataException($"object 0x{o:x} was handed out while allocated");
                }
            }
            tx.Commit();
        }
        using (Transaction tx = heap.Begin())
        {
            Assert.Throws<HeapFullException>(() => tx.Allocate());
        }
    }

    // Redo commits whose home bytes are applied and flushed but never drained (the process dies right
    // after): recovery replays the last two commits of one lane and the one of the other, and a crash
    // at any drain of that recovery is recovered again to the committed state.
    [Fact]
    public void ACrashDuringTheReplayOfRedoCommitsIsRecoveredAgain()
    {
        string committed = "";
        void Setup(DaxMapping map)
        {
            TransactionalHeap heap = Create(map);
            long r = heap.RootOffset;
            Span<byte> bytes = stackalloc byte[64];
            for (int i = 0; i < 3; i++)
            {
                using Transaction tx = heap.Begin();
                bytes.Fill((byte)(0x11 + i));
                tx.Write(r + 64 * i, bytes);
                tx.Commit();
            }
            using (Transaction held = heap.Begin())
            {
                using (Transaction tx = heap.Begin())
                {
                    Assert.NotEqual(held.Lane, tx.Lane);
                    bytes.Fill(0x21);
                    tx.Write(r + 320, bytes);
                    tx.Commit();
                }
                bytes.Fill(0x22);
                held.Write(r + 384, bytes);
                held.Commit();
            }
            committed = Describe(heap);
            // abandoned: the process "dies" here, the last home bytes flushed but not drained
        }
        CrashTestResult result = new CrashTest
        {
            DeviceLength = Length,
            Setup = Setup,
            Workload = map =>
            {
                TransactionalHeap heap = Open(map);
                Assert.Equal(3, heap.Recovery.CommitsReplayed);
                Assert.False(heap.Recovery.RolledBack);
            },
            Recover = map =>
            {
                TransactionalHeap heap = Open(map);
                if (Describe(heap) != committed)
                {
                    throw new InvalidDataException("recovery interrupted by a crash did not end at the committed state");
                }
                if (Open(map).Recovery.CommitsReplayed != 0)
                {
                    throw new InvalidDataException("a second recovery replayed again");
                }
            },
            RandomImages = TxKnobs.RandomImages,
            ExhaustiveLimit = TxKnobs.ExhaustiveLimit,
        }.Run();
        output.WriteLine(result.Summary());
        result.ThrowIfFailed();
        Assert.True(result.Statistics.Drains >= 2, "replay, then the words");
    }

    [Fact]
    public void ACrashDuringRecoveryIsRecoveredAgain()
    {
        // Two lanes each hold an unfinished transaction whose changes are already durable.
        string committed = "";
        void Setup(DaxMapping map)
        {
            TransactionalHeap heap = Create(map);
            long r = heap.RootOffset;
            using (Transaction tx = heap.Begin())
            {
                Fill(tx.Modify(r, 256), 0x11);
                long o = tx.Allocate();
                Fill(tx.GetSpan(o, 64), 0x12);
                tx.GetRef<long>(r + 256) = o;
                tx.Commit();
            }
            committed = Describe(heap);
            Transaction a = heap.Begin();
            Transaction b = heap.Begin();
            Assert.NotEqual(a.Lane, b.Lane);
            Fill(a.Modify(r, 100), 0xA1);
            Fill(a.Modify(r + 200, 56), 0xA2);
            a.Free(map.GetReadOnlyRef<long>(r + 256));
            long fresh = b.Allocate();
            Fill(b.GetSpan(fresh, 64), 0xB1);
            b.GetRef<long>(r + 264) = fresh;
            Fill(b.Modify(r + 300, 100), 0xB2);
            map.Persist(0, Length); // the worst case: every change durable, neither transaction committed
            // abandoned: the process "dies" here
        }
        CrashTestResult result = new CrashTest
        {
            DeviceLength = Length,
            Setup = Setup,
            Workload = map =>
            {
                TransactionalHeap heap = Open(map);
                Assert.Equal(2, heap.Recovery.LanesRolledBack);
            },
            Recover = map =>
            {
                string state = Describe(Open(map));
                if (state != committed)
                {
                    throw new InvalidDataException("recovery interrupted by a crash did not end at the committed state");
                }
            },
            RandomImages = TxKnobs.RandomImages,
            ExhaustiveLimit = TxKnobs.ExhaustiveLimit,
        }.Run();
        output.WriteLine(result.Summary());
        result.ThrowIfFailed();
        Assert.True(result.Statistics.Drains >= 3, "rollback, then one publish per lane");
    }
}
