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

    /// <summary>The states after setup and after each acknowledged transaction, from a run without crashes.</summary>
    private static List<string> ExpectedStates(Action<TransactionalHeap, Action> workload)
    {
        using SimulatedDevice device = SimulatedDevice.Create(Length);
        TransactionalHeap heap = Create(device.Mapping);
        var states = new List<string> { Describe(heap) };
        workload(heap, () => states.Add(Describe(heap)));
        return states;
    }

    private AckSweep.Result Sweep(Action<TransactionalHeap, Action> workload, Action<TransactionalHeap>? extraCheck = null, bool broken = false, bool noCrossLaneConfirm = false)
    {
        broken |= noCrossLaneConfirm;
        List<string> expected = ExpectedStates(workload);
        Assert.True(expected.Distinct().Count() >= 3, "the workload changes the state");
        AckSweep.Result result = new AckSweep
        {
            DeviceLength = Length,
            Setup = map => Create(map),
            Workload = (map, ack) =>
            {
                TransactionalHeap heap = Open(map);
                heap.SkipSnapshotDrainForTest = broken && !noCrossLaneConfirm;
                heap.SkipCrossLaneConfirmForTest = noCrossLaneConfirm;
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
    public void AllocationAndFreeNeitherLeakNorDoubleAllocateAtEveryDrain() => Sweep(Objects, heap =>
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
    });

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
