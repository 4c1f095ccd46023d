using System.Buffers.Binary;
using System.IO.Hashing;
using DirectPmem.Mapping;
using DirectPmem.Storage.Transactions;
using DirectPmem.Testing;
using Xunit;
using static DirectPmem.Storage.Tests.Transactions.HeapState;

namespace DirectPmem.Storage.Tests.Transactions;

public sealed class TransactionTests
{
    private static SimulatedDevice NewDevice() => SimulatedDevice.Create(Length);

    // A lane's unconfirmed commit is confirmed by another lane only when that lane is about to
    // change bytes the commit declared: bytes next to them leave its lane line untouched.
    [Fact]
    public void WriteShowsTheOldBytesUntilCommitAndTheNewOnesAfterAndAbortWritesNothing()
    {
        using SimulatedDevice device = NewDevice();
        TransactionalHeap heap = Create(device.Mapping);
        DaxMapping map = device.Mapping;
        long r = heap.RootOffset;
        using (Transaction tx = heap.Begin())
        {
            tx.Write(r, [1, 2, 3]);
            Assert.Equal(0, map.GetReadOnlyRef<byte>(r));  // home shows the old bytes until Commit
            Assert.Equal(32 + 8, tx.LogBytesUsed);           // one redo entry: 32 B header, 3 B padded to 8
            tx.Commit();
        }
        Assert.Equal([1, 2, 3], map.GetReadOnlySpan(r, 3).ToArray());
        using (Transaction tx = heap.Begin())
        {
            tx.Write(r, [9, 9, 9]);
            tx.Abort();
        }
        Assert.Equal([1, 2, 3], map.GetReadOnlySpan(r, 3).ToArray());
        Assert.Equal([1, 2, 3], map.GetReadOnlySpan(Open(map).RootOffset, 3).ToArray());
    }

    // A redo commit's entries may reach the media before the lines of the objects it allocated and
    // wrote in place (one fence covers both): its commit entry carries their hash, and recovery
    // replays it only if the objects on the media match. Built directly: the image after the commit
    // with the object's line (and the home bytes) put back as they were before it.
    [Fact]
    public void ARedoCommitWhoseNewObjectDidNotReachTheMediaIsNotReplayedAndOneWhoseObjectDidIs()
    {
        using SimulatedDevice device = NewDevice();
        TransactionalHeap heap = Create(device.Mapping);
        DaxMapping map = device.Mapping;
        long r = heap.RootOffset;
        long o = heap.GetObjectOffset(0);
        map.GetSpan(o, heap.ObjectSize).Fill(0x33); // what a free object held before
        map.Persist(0, Length);
        string before = Describe(heap);
        byte[] old = device.GetMediaCopy();
        using (Transaction tx = heap.Begin())
        {
            Assert.Equal(o, tx.Allocate());
            tx.GetSpan(o, heap.ObjectSize).Fill(0x5A);
            tx.Write(r, BitConverter.GetBytes(o));
            tx.Commit();
        }
        string after = Describe(heap);
        map.Persist(0, Length);
        byte[] committed = device.GetMediaCopy();
        long mapByte = heap.RootOffset + heap.RootSize; // the allocation map follows the root
        foreach (bool objectLanded in new[] { false, true })
        {
            byte[] image = (byte[])committed.Clone();
            old.AsSpan((int)r, 8).CopyTo(image.AsSpan((int)r));             // the home bytes did not land
            old.AsSpan((int)mapByte, 64).CopyTo(image.AsSpan((int)mapByte));
            if (!objectLanded)
            {
                old.AsSpan((int)o, heap.ObjectSize).CopyTo(image.AsSpan((int)o));
            }
            using SimulatedDevice crashed = SimulatedDevice.FromImage(image);
            TransactionalHeap recovered = Open(crashed.Mapping);
            Assert.Equal(objectLanded ? after : before, Describe(recovered));
            Assert.Equal(objectLanded ? 1 : 0, recovered.Recovery.CommitsReplayed);
        }
    }

    // A Write that covers part of an object allocated in the transaction: that part in place at once
    // (after the caller's earlier writes into the object), the rest through the redo log.
    [Fact]
    public void AWriteAcrossANewObjectAndAnOldOneWritesTheNewPartInPlaceAndTheRestAtCommit()
    {
        using SimulatedDevice device = NewDevice();
        TransactionalHeap heap = Create(device.Mapping);
        DaxMapping map = device.Mapping;
        byte[] bytes = new byte[2 * heap.ObjectSize];
        bytes.AsSpan().Fill(0x77);
        long o;
        using (Transaction tx = heap.Begin())
        {
            o = tx.Allocate();
            Assert.Equal(heap.GetObjectOffset(0), o);
            tx.GetSpan(o, heap.ObjectSize).Fill(0x11);
            tx.Write(o, bytes); // object 0 (new) and object 1 (free, not in this transaction)
            Assert.Equal(0x77, map.GetReadOnlyRef<byte>(o + heap.ObjectSize - 1));
            Assert.Equal(0, map.GetReadOnlyRef<byte>(o + heap.ObjectSize));
            tx.Commit();
        }
        Assert.All(map.GetReadOnlySpan(o, bytes.Length).ToArray(), b => Assert.Equal(0x77, b));
        TransactionalHeap reopened = Open(map);
        Assert.True(reopened.IsAllocated(o));
        Assert.All(map.GetReadOnlySpan(o, bytes.Length).ToArray(), b => Assert.Equal(0x77, b));
    }

    [Fact]
    public void AnotherLaneRaisesALaneWordOnlyBeforeChangingBytesItsCommitDeclared()
    {
        using SimulatedDevice device = NewDevice();
        TransactionalHeap heap = Create(device.Mapping);
        long r = heap.RootOffset;
        Transaction held = heap.Begin(); // holds a lane, so that the next Begin takes the other
        int committer;
        using (Transaction tx = heap.Begin())
        {
            committer = tx.Lane;
            Fill(tx.Modify(r, 64), 1);
            tx.Commit();
        }
        long word = HeapLayout.HeaderBlock + committer * (HeapLayout.LaneHeader + 2L * Options.LaneLogSize);
        ulong unconfirmed = device.Mapping.GetReadOnlyRef<ulong>(word);
        Assert.True(LaneWord.TryDecode(unconfirmed, out ulong generation));
        Assert.Equal(0UL, generation);
        Fill(held.Modify(r + 64, 64), 2);   // touching the committed range, not overlapping it
        held.Commit();
        Assert.Equal(unconfirmed, device.Mapping.GetReadOnlyRef<ulong>(word));
        using (Transaction tx = heap.Begin())
        {
            Assert.NotEqual(committer, tx.Lane);
            tx.AddRange(r + 32, 8);         // declared: nothing changes in place yet
            Assert.Equal(unconfirmed, device.Mapping.GetReadOnlyRef<ulong>(word));
            tx.GetSpan(r + 32, 8)[0] = 3;   // the first writable span: the committer's word is raised first
            Assert.True(LaneWord.TryDecode(device.Mapping.GetReadOnlyRef<ulong>(word), out generation));
            Assert.Equal(1UL, generation);
            tx.Commit();
        }
        // The raise was made durable by the fence before the change: on the media too.
        using SimulatedDevice after = SimulatedDevice.FromImage(device.GetMediaCopy());
        Assert.True(LaneWord.TryDecode(after.Mapping.GetReadOnlyRef<ulong>(word), out generation));
        Assert.Equal(1UL, generation);
    }

    [Fact]
    public void CommittedChangesAreOnTheMediaAndSurviveReopen()
    {
        using SimulatedDevice device = NewDevice();
        TransactionalHeap heap = Create(device.Mapping);
        long r = heap.RootOffset;
        using (Transaction tx = heap.Begin())
        {
            "hello"u8.CopyTo(tx.Modify(r, 5));
            tx.GetRef<long>(r + 64) = 42;
            tx.Commit();
            Assert.False(tx.IsActive);
        }
        // The media (what survives a power failure now) holds the commit.
        using SimulatedDevice after = SimulatedDevice.FromImage(device.GetMediaCopy());
        TransactionalHeap reopened = Open(after.Mapping);
        Assert.False(reopened.Recovery.RolledBack);
        Assert.True(after.Mapping.GetReadOnlySpan(reopened.RootOffset, 5).SequenceEqual("hello"u8));
        Assert.Equal(42, after.Mapping.GetReadOnlyRef<long>(reopened.RootOffset + 64));
    }

    [Fact]
    public void AbortDisposeWithoutCommitAndExceptionsRollBack()
    {
        using SimulatedDevice device = NewDevice();
        TransactionalHeap heap = Create(device.Mapping);
        long r = heap.RootOffset;
        using (Transaction tx = heap.Begin())
        {
            Fill(tx.Modify(r, 128), 9);
            tx.Commit();
        }
        using (Transaction tx = heap.Begin())
        {
            Fill(tx.Modify(r, 64), 1);
            tx.Abort();
            Assert.False(tx.IsActive);
        }
        using (Transaction tx = heap.Begin())
        {
            Fill(tx.Modify(r + 32, 64), 2);
        }
        Assert.Throws<InvalidOperationException>((Action)(() =>
        {
            using Transaction tx = heap.Begin();
            Fill(tx.Modify(r + 100, 28), 3);
            throw new InvalidOperationException("inside");
        }));
        Assert.All(device.Mapping.GetReadOnlySpan(r, 128).ToArray(), b => Assert.Equal(9, b));
        // and the rollbacks are durable: the media agrees
        Assert.All(device.GetMediaCopy().AsSpan((int)r, 128).ToArray(), b => Assert.Equal(9, b));
    }

    [Fact]
    public void ARangeDeclaredTwiceOverlappingOrAdjacentIsLoggedOnce()
    {
        using SimulatedDevice device = NewDevice();
        TransactionalHeap heap = Create(device.Mapping);
        long r = heap.RootOffset;
        using Transaction tx = heap.Begin();
        tx.AddRange(r, 64);
        Assert.Equal(32 + 64, tx.LogBytesUsed);
        tx.AddRange(r, 64);
        tx.AddRange(r + 16, 16);
        Assert.Equal(32 + 64, tx.LogBytesUsed);
        tx.AddRange(r + 32, 64);                   // overlaps 32 bytes: only the new 32 are logged
        Assert.Equal(2 * 32 + 64 + 32, tx.LogBytesUsed);
        tx.AddRange(r + 96, 8);                    // adjacent: merged, so one span covers all
        Assert.Equal(3 * 32 + 64 + 32 + 8, tx.LogBytesUsed);
        Assert.Equal(104, tx.GetSpan(r, 104).Length);
        tx.AddRange(r + 200, 8);
        tx.AddRange(r + 150, 100);                 // covers a declared range in its middle: two gaps
        Assert.Equal(6 * 32 + 64 + 32 + 8 + 8 + 56 + 48, tx.LogBytesUsed);
        Fill(tx.GetSpan(r, 104), 7);
        Fill(tx.GetSpan(r + 150, 100), 7);
        tx.Abort();
        Assert.All(device.Mapping.GetReadOnlySpan(r, 250).ToArray(), b => Assert.Equal(0, b));
    }

    [Fact]
    public void ASpanOutsideTheDeclaredRangesIsRefused()
    {
        using SimulatedDevice device = NewDevice();
        TransactionalHeap heap = Create(device.Mapping);
        long r = heap.RootOffset;
        using Transaction tx = heap.Begin();
        tx.AddRange(r, 64);
        Assert.Throws<InvalidOperationException>(() => tx.GetSpan(r + 32, 64));
        Assert.Throws<InvalidOperationException>(() => tx.GetSpan(r + 128, 1));
        ArgumentOutOfRangeException outside = Assert.Throws<ArgumentOutOfRangeException>(() => tx.AddRange(heap.RegionOffset, 8));
        Assert.Contains("transactional area", outside.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => tx.AddRange(heap.ObjectsOffset + (long)heap.ObjectCount * heap.ObjectSize - 4, 8));
        Assert.Throws<ArgumentException>(() => tx.GetRef<long>(r + 4));
    }

    [Fact]
    public void AnUndoLogOverflowIsRefusedBeforeAnythingIsModified()
    {
        using SimulatedDevice device = NewDevice();
        TransactionalHeap heap = Create(device.Mapping);
        long r = heap.RootOffset;
        using (Transaction tx = heap.Begin())
        {
            Fill(tx.Modify(r, 256), 1);
            tx.Commit();
        }
        using (Transaction tx = heap.Begin())
        {
            Fill(tx.Modify(r, 256), 2);                                 // 288 of 1024 bytes
            int used = tx.LogBytesUsed;
            TransactionLogFullException full = Assert.Throws<TransactionLogFullException>(() => tx.AddRange(r + 256, 256 + 512));
            Assert.Equal(1024, full.Capacity);
            Assert.Equal(used, full.Used);
            Assert.Equal(32 + 768, full.Required);
            Assert.Equal(used, tx.LogBytesUsed);                        // nothing was logged
            Assert.Throws<InvalidOperationException>(() => tx.GetSpan(r + 256, 1)); // nor declared
            Assert.True(tx.IsActive);
        }
        Assert.All(device.Mapping.GetReadOnlySpan(r, 256).ToArray(), b => Assert.Equal(1, b));
        Assert.All(device.Mapping.GetReadOnlySpan(r + 256, 256).ToArray(), b => Assert.Equal(0, b));
    }

    [Fact]
    public void AFinishedTransactionRefusesEverythingButDispose()
    {
        using SimulatedDevice device = NewDevice();
        TransactionalHeap heap = Create(device.Mapping);
        Transaction tx = heap.Begin();
        tx.Commit();
        Assert.Throws<InvalidOperationException>(() => tx.AddRange(heap.RootOffset, 8));
        Assert.Throws<InvalidOperationException>(() => tx.Commit());
        Assert.Throws<InvalidOperationException>(() => tx.Allocate());
        tx.Dispose();
        Assert.Throws<InvalidOperationException>(() => default(Transaction).Commit());
        // a new transaction on the same lane is a different handle
        using Transaction next = heap.Begin();
        Assert.NotEqual(tx, next);
        Assert.False(tx.IsActive);
    }

    [Fact]
    public void TheAllocatorRollsBackWithTheTransactionAndRefusesDoubleFrees()
    {
        using SimulatedDevice device = NewDevice();
        TransactionalHeap heap = Create(device.Mapping);
        long a;
        using (Transaction tx = heap.Begin())
        {
            a = tx.Allocate();
            Assert.Equal(heap.GetObjectOffset(0), a);
            tx.Commit();
        }
        Assert.True(heap.IsAllocated(a));
        Assert.Equal(heap.ObjectCount - 1, heap.FreeObjectCount);
        using (Transaction tx = heap.Begin())
        {
            tx.Allocate();
            tx.Free(a);
            Assert.Throws<InvalidOperationException>(() => tx.Free(a));
            // rolled back: a stays allocated, the other is free again
        }
        Assert.True(heap.IsAllocated(a));
        Assert.Equal(heap.ObjectCount - 1, heap.FreeObjectCount);
        using (Transaction tx = heap.Begin())
        {
            Assert.Throws<InvalidOperationException>(() => tx.Free(heap.GetObjectOffset(5)));   // not allocated
            Assert.Throws<ArgumentException>(() => tx.Free(a + 8));                             // not an object start
        }
    }

    // Bytes of a free object written with Write, then the object allocated and written in place: the
    // later in-place bytes win, whether the transaction was still on the redo path when it allocated or
    // had already moved to undo (its Write's bytes staged, not yet applied).
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AnObjectWrittenBeforeItIsAllocatedKeepsTheBytesWrittenInPlaceAfter(bool undoFirst)
    {
        using SimulatedDevice device = NewDevice();
        TransactionalHeap heap = Create(device.Mapping);
        DaxMapping map = device.Mapping;
        long first = heap.GetObjectOffset(0);
        using (Transaction tx = heap.Begin())
        {
            tx.Write(first, [0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA]);
            if (undoFirst)
            {
                tx.AddRange(heap.RootOffset, 8);
            }
            long o = tx.Allocate();
            Assert.Equal(first, o);
            tx.GetSpan(o, 4).Fill(0x55);
            tx.Commit();
        }
        byte[] expected = [0x55, 0x55, 0x55, 0x55, 0xAA, 0xAA, 0xAA, 0xAA];
        Assert.Equal(expected, map.GetReadOnlySpan(first, 8).ToArray());
        TransactionalHeap reopened = Open(map);
        Assert.True(reopened.IsAllocated(first));
        Assert.Equal(expected, map.GetReadOnlySpan(first, 8).ToArray());
    }

    [Fact]
    public void AFreedObjectIsNotHandedOutBeforeItsTransactionCommits()
    {
        using SimulatedDevice device = NewDevice();
        TransactionalHeap heap = TransactionalHeap.Create(device.Mapping, 0, Length, Options);
        var all = new List<long>();
        using (Transaction tx = heap.Begin())
        {
            for (int i = 0; i < 16; i++)
            {
                all.Add(tx.Allocate());
            }
            tx.Commit();
        }
        Transaction freeing = heap.Begin();
        freeing.Free(all[3]);
        Transaction other = heap.Begin();
        while (heap.FreeObjectCount > 0)
        {
            Assert.NotEqual(all[3], other.Allocate());
            if (other.LogBytesUsed > 900)
            {
                other.Commit();
                other = heap.Begin();
            }
        }
        Assert.Throws<HeapFullException>(() => other.Allocate());
        freeing.Commit();
        Assert.Equal(all[3], other.Allocate());
        other.Commit();
    }

    [Fact]
    public void ConcurrentTransactionsOnDisjointDataUseSeparateLanes()
    {
        using DaxMapping map = DaxMapping.CreateAnonymous(1 << 20);
        TransactionalHeap heap = TransactionalHeap.Create(map, 0, 1 << 20, new TransactionalHeapOptions { LaneCount = 4, ObjectSize = 64 });
        const int Threads = 4, PerThread = 2000;
        var lanesSeen = new bool[4];
        Parallel.For(0, Threads, new ParallelOptions { MaxDegreeOfParallelism = Threads }, t =>
        {
            long counter = heap.RootOffset + t * 64;   // each thread owns its cache line
            for (int i = 0; i < PerThread; i++)
            {
                using Transaction tx = heap.Begin();
                lanesSeen[tx.Lane] = true;
                tx.GetRef<long>(counter)++;
                long o = tx.Allocate();
                BinaryPrimitives.WriteInt64LittleEndian(tx.GetSpan(o, 8), t);
                if (i % 2 == 1)
                {
                    tx.Free(o);
                }
                if (i % 10 == 9)
                {
                    tx.Abort();     // neither the increment nor the allocation happens
                }
                else
                {
                    tx.Commit();
                }
            }
        });
        for (int t = 0; t < Threads; t++)
        {
            Assert.Equal(PerThread * 9 / 10, map.GetReadOnlyRef<long>(heap.RootOffset + t * 64));
        }
        // Committed allocations kept: even i that were not aborted (i % 10 != 9 and i even).
        int kept = Threads * Enumerable.Range(0, PerThread).Count(i => i % 2 == 0 && i % 10 != 9);
        Assert.Equal(heap.ObjectCount - kept, heap.FreeObjectCount);
        TransactionalHeap reopened = TransactionalHeap.Open(map, 0, 1 << 20);
        Assert.Equal(kept, reopened.Recovery.AllocatedObjects);
    }

    [Fact]
    public void OpenRefusesWhatIsNotAValidHeapAndNamesTheField()
    {
        using SimulatedDevice device = NewDevice();
        DaxMapping map = device.Mapping;
        Assert.Equal(HeapField.Signature, Assert.Throws<TransactionalHeapFormatException>(() => Open(map)).Field);
        Create(map);
        Assert.Equal(HeapField.Length, Assert.Throws<TransactionalHeapFormatException>(() => TransactionalHeap.Open(map, 0, Length - 64)).Field);
        // Both copies lose a bit of the object count (under the checksum): no intact copy.
        map.GetRef<byte>(64) ^= 1;
        map.GetRef<byte>(HeapLayout.BackupOffset + 64) ^= 1;
        TransactionalHeapFormatException sum = Assert.Throws<TransactionalHeapFormatException>(() => Open(map));
        Assert.Equal(HeapField.Checksum, sum.Field);
        Assert.Equal(HeapLayout.ChecksumOffset, sum.Offset);
        map.GetRef<byte>(HeapLayout.BackupOffset + 64) ^= 1;
        // The primary alone is damaged: the open restores it from the backup and says so.
        TransactionalHeap repaired = Open(map);
        Assert.Equal(PoolHeaderRepair.PrimaryRestoredFromBackup, repaired.Recovery.HeaderRepair);
        Assert.Equal(PoolHeaderRepair.None, Open(map).Recovery.HeaderRepair);
        RewriteHeaders(map, h => h[8] = 9);                 // major version
        Assert.Equal(HeapField.Version, Assert.Throws<TransactionalHeapFormatException>(() => Open(map)).Field);
        RewriteHeaders(map, h => h[8] = 2);                 // format 2 (no feature words, no backup): refused, saying what to do
        TransactionalHeapFormatException old = Assert.Throws<TransactionalHeapFormatException>(() => Open(map));
        Assert.Equal(HeapField.Version, old.Field);
        Assert.Contains("Heap format 2", old.Message, StringComparison.Ordinal);
        Assert.Contains("copy its data into a new heap", old.Message, StringComparison.Ordinal);
        RewriteHeaders(map, h => h[8] = 1);                 // format 1 (eager commit words)
        Assert.Contains("Heap format 1", Assert.Throws<TransactionalHeapFormatException>(() => Open(map)).Message, StringComparison.Ordinal);
        RewriteHeaders(map, h => h[8] = 3);                 // format 3 (undo only, one record per lane): refused, naming it
        TransactionalHeapFormatException three = Assert.Throws<TransactionalHeapFormatException>(() => Open(map));
        Assert.Equal(HeapField.Version, three.Field);
        Assert.Contains("Heap format 3", three.Message, StringComparison.Ordinal);
        Assert.Contains("reads heap format 4 only", three.Message, StringComparison.Ordinal);
        RewriteHeaders(map, h => h[8] = (byte)HeapLayout.Major);
        RewriteHeaders(map, h => h[24] = 1);                // an unknown incompatible feature
        Assert.Equal(HeapField.Features, Assert.Throws<TransactionalHeapFormatException>(() => Open(map)).Field);
        RewriteHeaders(map, h => h[24] = 0);
        TransactionalHeap heap = Open(map);
        map.GetRef<byte>(HeapLayout.HeaderBlock + 2) ^= 0x40; // lane 0's generation word
        TransactionalHeapFormatException lane = Assert.Throws<TransactionalHeapFormatException>(() => Open(map));
        Assert.Equal(HeapField.LaneGeneration, lane.Field);
        Assert.Equal(HeapLayout.HeaderBlock, lane.Offset);
        map.GetRef<byte>(HeapLayout.HeaderBlock + 2) ^= 0x40;
        map.GetRef<byte>(heap.ObjectsOffset - 64 - 1) = 0;
        long mapByte = heap.TransactionalAreaOffset + heap.RootSize + 3;
        map.GetRef<byte>(mapByte) = 7;
        TransactionalHeapFormatException objects = Assert.Throws<TransactionalHeapFormatException>(() => Open(map));
        Assert.Equal(HeapField.ObjectMap, objects.Field);
        Assert.Equal(mapByte, objects.Offset);
    }

    // Changes both header copies and keeps their checksums valid.
    private static void RewriteHeaders(DaxMapping map, Action<byte[]> change)
    {
        byte[] header = map.GetReadOnlySpan(0, HeapLayout.HeaderLength).ToArray();
        change(header);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(HeapLayout.ChecksumOffset), XxHash3.HashToUInt64(header.AsSpan(0, HeapLayout.ChecksumOffset)));
        header.CopyTo(map.GetSpan(0, HeapLayout.HeaderLength));
        header.CopyTo(map.GetSpan(HeapLayout.BackupOffset, HeapLayout.HeaderLength));
    }

    [Fact]
    public void CreateRefusesToWipeALiveHeapUnlessToldTo()
    {
        using SimulatedDevice device = NewDevice();
        DaxMapping map = device.Mapping;
        TransactionalHeap heap = Create(map);
        using (Transaction tx = heap.Begin())
        {
            Fill(tx.Modify(heap.RootOffset, 8), 0x5A);
            tx.Commit();
        }
        TransactionalHeapExistsException exists = Assert.Throws<TransactionalHeapExistsException>(() => Create(map));
        Assert.Equal(0, exists.Offset);
        Assert.Equal(HeapLayout.Major, exists.FormatVersion);
        Assert.Equal(Length, exists.RegionLength);
        Assert.Contains("TransactionalHeap.Create", exists.Message, StringComparison.Ordinal);
        Assert.Contains("ReplaceExisting", exists.Message, StringComparison.Ordinal);
        // Nothing was written: the heap opens with its data.
        Assert.Equal(0x5A, Open(map).Mapping.GetReadOnlyRef<byte>(heap.RootOffset));
        TransactionalHeap replaced = TransactionalHeap.Create(map, 0, Length, new TransactionalHeapOptions
        {
            LaneCount = Options.LaneCount, LaneLogSize = Options.LaneLogSize, RootSize = Options.RootSize, ObjectSize = Options.ObjectSize, ReplaceExisting = true,
        });
        Assert.Equal(0, map.GetReadOnlyRef<byte>(replaced.RootOffset));
    }

    [Fact]
    public void CreateRefusesBadRegionsAndGeometry()
    {
        using SimulatedDevice device = NewDevice();
        DaxMapping map = device.Mapping;
        Assert.Equal("offset", Assert.Throws<ArgumentOutOfRangeException>(() => TransactionalHeap.Create(map, 32, 4096)).ParamName);
        Assert.Equal("length", Assert.Throws<ArgumentOutOfRangeException>(() => TransactionalHeap.Create(map, 0, Length + 64)).ParamName);
        Assert.Equal("length", Assert.Throws<ArgumentOutOfRangeException>(() => TransactionalHeap.Create(map, 0, 4000)).ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => TransactionalHeap.Create(map, 0, Length, new TransactionalHeapOptions { LaneCount = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => TransactionalHeap.Create(map, 0, Length, new TransactionalHeapOptions { LaneLogSize = 100 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => TransactionalHeap.Create(map, 0, Length, new TransactionalHeapOptions { ObjectSize = 12 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => TransactionalHeap.Create(map, 0, Length, new TransactionalHeapOptions { ObjectCount = 100_000 }));
        TransactionalHeap filled = TransactionalHeap.Create(map, 4096, Length - 4096, new TransactionalHeapOptions { LaneCount = 1, LaneLogSize = 256, RootSize = 0, ObjectSize = 64 });
        Assert.True(filled.ObjectsOffset + (long)filled.ObjectCount * 64 <= Length);
        Assert.True(filled.ObjectsOffset + (long)(filled.ObjectCount + 1) * 64 + 64 > Length, "as many objects as fit");
        Assert.Equal(filled.ObjectCount, TransactionalHeap.Open(map, 4096, Length - 4096).FreeObjectCount);
    }

    [Fact]
    public void AHeapInAPoolFileSurvivesReopen()
    {
        string dir = Directory.CreateTempSubdirectory("directpmem-tx-").FullName;
        try
        {
            string path = Path.Combine(dir, "heap.pool");
            using (PmemPool pool = TestPools.CreateFile(path, 1 << 20, "tx-test"))
            {
                Assert.Throws<TransactionalHeapFormatException>(() => pool.OpenTransactionalHeap());
                TransactionalHeap heap = pool.CreateTransactionalHeap();
                Assert.Equal(pool.DataOffset, pool.RootOffset);
                using Transaction tx = heap.Begin();
                "persisted"u8.CopyTo(tx.Modify(heap.RootOffset, 9));
                tx.Commit();
            }
            using (PmemPool pool = PmemPool.OpenFile(path, "tx-test"))
            {
                TransactionalHeap heap = pool.OpenTransactionalHeap();
                Assert.True(pool.Mapping.GetReadOnlySpan(heap.RootOffset, 9).SequenceEqual("persisted"u8));
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
