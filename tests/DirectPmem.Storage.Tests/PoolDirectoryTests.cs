using DirectPmem.Mapping;
using DirectPmem.Storage.Transactions;
using DirectPmem.Testing;
using Xunit;

namespace DirectPmem.Storage.Tests;

/// <summary>The directory of named structures in a pool's reserved area: logs, heaps and reserved regions that share one pool.</summary>
public sealed class PoolDirectoryTests(ITestOutputHelper output)
{
    private const string Layout = "directory";
    private static readonly TransactionalHeapOptions s_smallHeap = new() { LaneCount = 2, LaneLogSize = 4096, ObjectSize = 64, ObjectCount = 16 };

    [Fact]
    public void ALogAHeapAndAReservedRegionShareAPoolAndReopenByName()
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(1 << 20);
        long lsn;
        long heapRoot;
        PoolDirectoryEntry volume;
        using (PmemPool pool = TestPools.Create(mapping, Layout))
        {
            PmemLog log = pool.CreateLog("wal", 64 << 10);
            lsn = log.Append("hello"u8);
            using TransactionalHeap heap = pool.CreateHeap("objects", 128 << 10, s_smallHeap);
            using (Transaction tx = heap.Begin())
            {
                tx.GetRef<long>(heap.RootOffset) = 42;
                tx.Commit();
            }
            heapRoot = heap.RootOffset;
            volume = pool.Reserve("volume", 10_000);
            Assert.Equal(12288, volume.Length); // rounded up to 4 KiB
            Assert.Equal(0, pool.RootOffset); // named structures leave the root to the application
        }
        using (PmemPool pool = PmemPool.Open(mapping, Layout))
        {
            Assert.Equal(["wal", "objects", "volume"], pool.Structures.Select(e => e.Name));
            PoolDirectoryEntry[] entries = [.. pool.Structures];
            for (int i = 1; i < entries.Length; i++)
            {
                Assert.True(entries[i - 1].Offset + entries[i - 1].Length <= entries[i].Offset, $"{entries[i - 1]} overlaps {entries[i]}");
            }
            Assert.All(entries, e => Assert.True(e.Offset >= pool.DataOffset && e.Offset + e.Length <= pool.Size));
            PmemLog log = pool.OpenLog("wal");
            byte[] record = new byte[16];
            Assert.Equal(5, log.Read(lsn, record));
            Assert.Equal("hello"u8.ToArray(), record[..5]);
            using TransactionalHeap heap = pool.OpenHeap("objects");
            Assert.Equal(heapRoot, heap.RootOffset);
            Assert.Equal(42, mapping.GetReadOnlyRef<long>(heap.RootOffset));
            PoolDirectoryEntry found = pool.Find("volume")!;
            Assert.Equal((PoolStructureKind.Reserved, volume.Offset, volume.Length), (found.Kind, found.Offset, found.Length));
        }
    }

    [Fact]
    public void ARemovedStructuresRangeIsHandedOutAgainEvenThoughItStillHoldsTheOldBytes()
    {
        // Remove frees the range in the directory without wiping it; the log's and the heap's own
        // "a live one is here" refusals must not stop a create the directory hands that range to.
        using DaxMapping mapping = DaxMapping.CreateAnonymous(1 << 20);
        using PmemPool pool = TestPools.Create(mapping, Layout);
        using (PmemLog old = pool.CreateLog("old-log", 64 << 10))
        {
            old.Append("stale"u8);
        }
        long logOffset = pool.Find("old-log")!.Offset;
        pool.Remove("old-log");
        using PmemLog log = pool.CreateLog("new-log", 64 << 10);
        Assert.Equal(logOffset, pool.Find("new-log")!.Offset);
        Assert.Equal(log.Head, log.Tail); // a fresh log, not the removed one reopened

        using (TransactionalHeap old = pool.CreateHeap("old-heap", 128 << 10, s_smallHeap))
        {
        }
        long heapOffset = pool.Find("old-heap")!.Offset;
        pool.Remove("old-heap");
        using TransactionalHeap heap = pool.CreateHeap("new-heap", 128 << 10, s_smallHeap);
        Assert.Equal(heapOffset, pool.Find("new-heap")!.Offset);
    }

    [Fact]
    public void ANamedHeapRefusesNewTransactionsOnceItsPoolIsDisposed()
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(1 << 20);
        PmemPool pool = TestPools.Create(mapping, Layout);
        using TransactionalHeap created = pool.CreateHeap("objects", 128 << 10, s_smallHeap);
        pool.Dispose();
        Assert.Throws<ObjectDisposedException>(() => created.Begin());

        using PmemPool reopened = PmemPool.Open(mapping, Layout);
        TransactionalHeap opened = reopened.OpenHeap("objects");
        reopened.Dispose();
        Assert.Throws<ObjectDisposedException>(() => opened.Begin());
    }

    [Fact]
    public void CreatingANameThatExistsIsATypedErrorNamingWhatIsThereAndChangesNothing()
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(1 << 20);
        using PmemPool pool = TestPools.Create(mapping, Layout);
        PmemLog log = pool.CreateLog("wal", 16 << 10);
        log.Append("keep me"u8);
        byte[] before = mapping.GetReadOnlySpan(0, 1 << 20).ToArray();
        PoolDirectoryException e = Assert.Throws<PoolDirectoryException>(() => pool.CreateHeap("wal", 64 << 10, s_smallHeap));
        Assert.Equal(PoolDirectoryError.NameExists, e.Error);
        Assert.Equal("wal", e.Name);
        Assert.Equal(PoolStructureKind.Log, e.Existing!.Kind);
        Assert.Contains("Log \"wal\"", e.Message, StringComparison.Ordinal);
        Assert.Contains("overwrite", e.Message, StringComparison.Ordinal);
        Assert.Equal(PoolDirectoryError.NameExists, Assert.Throws<PoolDirectoryException>(() => pool.CreateLog("wal", 16 << 10)).Error);
        Assert.Equal(PoolDirectoryError.NameExists, Assert.Throws<PoolDirectoryException>(() => pool.Reserve("wal", 4096)).Error);
        Assert.True(before.AsSpan().SequenceEqual(mapping.GetReadOnlySpan(0, 1 << 20)), "a refused create wrote to the pool");
    }

    [Fact]
    public void OverwriteFormatsANewRangeAndFreesTheOldOneInTheSameStep()
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(1 << 20);
        using PmemPool pool = TestPools.Create(mapping, Layout);
        PoolDirectoryEntry first = pool.Reserve("data", 64 << 10);
        mapping.GetSpan(first.Offset, 4)[0] = 0x5A;
        PmemLog log = pool.CreateLog("data", 32 << 10, overwrite: true);
        PoolDirectoryEntry now = Assert.Single(pool.Structures);
        Assert.Equal(PoolStructureKind.Log, now.Kind);
        Assert.False(now.Overlaps(first), "the replacement was formatted over the structure it replaces");
        Assert.Equal(0x5A, mapping.GetReadOnlySpan(first.Offset, 1)[0]);
        Assert.Equal(0, log.Tail);
        // The old range is free again.
        Assert.Equal(first.Offset, pool.Reserve("again", 64 << 10).Offset);
    }

    [Fact]
    public void OpeningAMissingNameOrTheWrongKindIsATypedError()
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(1 << 20);
        using PmemPool pool = TestPools.Create(mapping, Layout);
        pool.Reserve("volume", 4096);
        PoolDirectoryException missing = Assert.Throws<PoolDirectoryException>(() => pool.OpenLog("wal"));
        Assert.Equal(PoolDirectoryError.NotFound, missing.Error);
        Assert.Null(missing.Existing);
        PoolDirectoryException wrong = Assert.Throws<PoolDirectoryException>(() => pool.OpenHeap("volume"));
        Assert.Equal(PoolDirectoryError.WrongKind, wrong.Error);
        Assert.Equal(PoolStructureKind.Reserved, wrong.Existing!.Kind);
        Assert.Equal(PoolDirectoryError.NotFound, Assert.Throws<PoolDirectoryException>(() => pool.Remove("nothing")).Error);
    }

    [Fact]
    public void RemoveFreesTheNameAndTheRange()
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(1 << 20);
        using (PmemPool pool = TestPools.Create(mapping, Layout))
        {
            PoolDirectoryEntry a = pool.Reserve("a", 8192);
            pool.Reserve("b", 8192);
            Assert.Equal(a.Offset, pool.Remove("a").Offset);
            Assert.Null(pool.Find("a"));
            Assert.Equal(a.Offset, pool.Reserve("c", 4096).Offset);
        }
        using PmemPool reopened = PmemPool.Open(mapping, Layout);
        Assert.Equal(["c", "b"], reopened.Structures.Select(e => e.Name));
    }

    [Fact]
    public void AFullDirectoryAndAFullDataAreaAreTypedErrors()
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(PmemPool.MinimumSize + 4 * 4096);
        using (PmemPool pool = TestPools.Create(mapping, Layout))
        {
            pool.Reserve("most", 4 * 4096);
            PoolDirectoryException e = Assert.Throws<PoolDirectoryException>(() => pool.Reserve("more", 4096 * 2));
            Assert.Equal(PoolDirectoryError.NoSpace, e.Error);
        }
        using DaxMapping big = DaxMapping.CreateAnonymous(1 << 20);
        using PmemPool many = TestPools.Create(big, Layout);
        for (int i = 0; i < PoolDirectory.Capacity; i++)
        {
            many.Reserve("r" + i, 4096);
        }
        Assert.Equal(PoolDirectoryError.DirectoryFull, Assert.Throws<PoolDirectoryException>(() => many.Reserve("one-more", 4096)).Error);
    }

    [Theory]
    [InlineData("")]
    [InlineData("a\0b")]
    [InlineData("0123456789012345678901234567890123456789")] // 40 bytes
    public void BadNamesAreRefusedNamingTheParameter(string name)
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(1 << 20);
        using PmemPool pool = TestPools.Create(mapping, Layout);
        Assert.Equal("name", Assert.Throws<ArgumentException>(() => pool.Reserve(name, 4096)).ParamName);
    }

    [Fact]
    public void AReadOnlyPoolListsAndOpensButDoesNotCreate()
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(1 << 20);
        using (PmemPool pool = TestPools.Create(mapping, Layout))
        {
            pool.CreateLog("wal", 16 << 10).Append("x"u8);
        }
        using PmemPool readOnly = PmemPool.Open(mapping, Layout, new PoolOpenOptions { ReadOnly = true });
        Assert.Single(readOnly.Structures);
        Assert.Single(Records(readOnly.OpenLog("wal")));
        Assert.Throws<InvalidOperationException>(() => readOnly.Reserve("r", 4096));
    }

    [Fact]
    public void ADamagedDirectoryCopyIsRestoredFromTheOtherAndBothDamagedIsRefused()
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(1 << 20);
        using (PmemPool pool = TestPools.Create(mapping, Layout))
        {
            pool.Reserve("r", 4096);
        }
        mapping.GetSpan(PoolDirectory.PrimaryOffset + 130, 1)[0] ^= 1;
        Assert.Equal(PoolHeaderRepair.PrimaryRestoredFromBackup, PoolInspector.InspectPool(mapping, Layout).DirectoryRepair);
        using (PmemPool pool = PmemPool.Open(mapping, Layout))
        {
            Assert.Equal("r", Assert.Single(pool.Structures).Name);
        }
        Assert.True(mapping.GetReadOnlySpan(PoolDirectory.PrimaryOffset, 4096).SequenceEqual(mapping.GetReadOnlySpan(PoolDirectory.BackupOffset, 4096)));

        mapping.GetSpan(PoolDirectory.PrimaryOffset + 130, 1)[0] ^= 1;
        mapping.GetSpan(PoolDirectory.BackupOffset + 200, 1)[0] ^= 1;
        PoolFormatException e = Assert.Throws<PoolFormatException>(() => PmemPool.Open(mapping, Layout));
        Assert.Equal(PoolHeaderField.Directory, e.Field);
        Assert.Contains(PoolInspector.InspectPool(mapping, Layout).Problems, p => p.Field == PoolHeaderField.Directory && p.Severity == PoolProblemSeverity.Error);
    }

    [Fact]
    public void AFormat10PoolOpensWithoutADirectoryAndNamedStructuresSayHowToMigrate()
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(1 << 20);
        TestPools.Create(mapping, Layout).Dispose();
        // What the 1.0 library wrote: no feature bits, no durability record, a reserved area of its own (here the old directory's bytes, unused).
        PoolTests.Tamper(mapping, h =>
        {
            h.Minor = 0;
            h.Compat = 0;
            h.RoCompat = 0;
            h.Durability = 0;
            h.Backing = 0;
        });
        using PmemPool pool = PmemPool.Open(mapping, Layout);
        Assert.False(pool.IsReadOnly);
        Assert.False(pool.HasDirectory);
        Assert.Equal(PoolFeatures.None, pool.Features);
        Assert.Empty(pool.Structures);
        PoolDirectoryException e = Assert.Throws<PoolDirectoryException>(() => pool.CreateLog("wal", 16 << 10));
        Assert.Equal(PoolDirectoryError.NoDirectory, e.Error);
        Assert.Contains("format 1.0", e.Message, StringComparison.Ordinal);
        Assert.Contains("create a new pool", e.Message, StringComparison.Ordinal);
        // The offset-based API keeps working on it.
        PmemLog.Create(pool, pool.DataOffset, 16 << 10).Append("old way"u8);
    }

    [Fact]
    public void DirectoryUpdatesAreBeforeOrAfterAtEveryCrashPoint()
    {
        // Each step changes the directory once; every crash image must open to one of these states (the old
        // "wal" holds "first", the new one "second" or nothing yet), and every structure it lists must open.
        string[][] states =
        [
            ["wal"],
            ["objects", "wal"],
            ["objects", "volume", "wal"],
            ["objects", "volume"],
        ];
        CrashTestResult result = new CrashTest
        {
            DeviceLength = 512 << 10,
            RandomImages = Knobs.CrashRandomImages,
            Setup = map =>
            {
                using PmemPool pool = TestPools.Create(map, Layout);
                pool.CreateLog("wal", 16 << 10).Append("first"u8);
            },
            Workload = map =>
            {
                using PmemPool pool = PmemPool.Open(map, Layout);
                pool.CreateHeap("objects", 64 << 10, s_smallHeap).Dispose();
                pool.Reserve("volume", 8192);
                pool.Remove("wal");
                pool.CreateLog("wal", 16 << 10).Append("second"u8);
            },
            Recover = map =>
            {
                using PmemPool pool = PmemPool.Open(map, Layout);
                string[] names = [.. pool.Structures.Select(e => e.Name).Order(StringComparer.Ordinal)];
                Assert.Contains(states, s => s.SequenceEqual(names));
                if (pool.Find("wal") is not null)
                {
                    byte[][] records = Records(pool.OpenLog("wal"));
                    bool old = records.Length == 1 && records[0].AsSpan().SequenceEqual("first"u8);
                    bool replaced = records.Length == 0 || (records.Length == 1 && records[0].AsSpan().SequenceEqual("second"u8));
                    Assert.True(old || (replaced && names.Length == 3), $"wal holds {records.Length} record(s) with {string.Join(", ", names)}");
                }
                if (pool.Find("objects") is not null)
                {
                    pool.OpenHeap("objects").Dispose();
                }
            },
        }.Run();
        output.WriteLine(result.Summary());
        Knobs.Record($"sweep pool-directory: {result.Statistics.CrashPoints} crash points, {result.Statistics.ImagesTried} images");
        result.ThrowIfFailed();
        Assert.True(result.Statistics.ImagesTried >= 100, $"only {result.Statistics.ImagesTried} images");
    }

    private static byte[][] Records(PmemLog log)
    {
        var records = new List<byte[]>();
        foreach (LogRecord record in log.ReadAll())
        {
            records.Add(record.Payload.ToArray());
        }
        return [.. records];
    }
}
