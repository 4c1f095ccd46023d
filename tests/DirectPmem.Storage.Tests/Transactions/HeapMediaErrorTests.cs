using DirectPmem.Mapping;
using DirectPmem.Storage.Transactions;
using Xunit;

namespace DirectPmem.Storage.Tests.Transactions;

/// <summary>
/// Issue 19 section 4 for the transactional heap, host tier: a real SIGBUS under heap recovery (the pool
/// file truncated under its mapping inside the undo log of an unfinished transaction) opens the heap
/// read-only with the unreadable entry named, twice in a row (no crash loop), writes nothing, and the
/// inspection reports the same problem; a lost header copy opens read-only from the other, and both lost is a typed error.
/// </summary>
public sealed class HeapMediaErrorTests : IDisposable
{
    private const long PoolSize = 1L << 20;
    private const string Layout = "heap-media";
    private const int LaneLogSize = 16 << 10;
    private const int Ranges = 8;
    private const int RangeLength = 1024;
    private readonly List<string> _dirs = [];

    public void Dispose()
    {
        foreach (string dir in _dirs)
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void RecoveryThatMeetsATruncatedUndoLogOpensTheHeapReadOnlyNamingTheEntryAndTheProcessLives()
    {
        (string path, long heapOffset, long heapLength) = CrashedPoolWithHeap();
        // Lane 0's first transaction (generation 1) logs in the odd half; the file ends one page into its entries.
        long entries = heapOffset + HeapLayout.HeaderBlock + HeapLayout.LaneHeader + LaneLogSize;
        long cut = (entries + 4095) & ~4095L;
        Assert.True(cut - entries < Ranges * (Lane.EntryHeader + RangeLength), "the cut must fall among the entries");

        using PmemFile file = PmemFile.Open(path, writable: true);
        using DaxMapping mapping = file.Map();
        using PmemPool pool = PmemPool.Open(mapping, Layout);
        byte[] before = mapping.GetReadOnlySpan(0, (int)cut).ToArray();
        Truncation.Truncate(path, cut);
        for (int attempt = 0; attempt < 2; attempt++)
        {
            TransactionalHeap heap = TransactionalHeap.Open(mapping, heapOffset, heapLength);
            Assert.True(heap.IsReadOnly);
            Assert.Contains("lane 0: the undo entry at offset", heap.ReadOnlyReason, StringComparison.Ordinal);
            Assert.Contains("a page past the end of the file", heap.ReadOnlyReason, StringComparison.Ordinal);
            Assert.False(heap.Recovery.RolledBack);
            Assert.Throws<InvalidOperationException>(() => heap.Begin());
            heap.Dispose();
        }
        // Nothing was written (no rollback, no lane word): the readable bytes are those of the crash.
        Assert.Equal(before, mapping.GetReadOnlySpan(0, (int)cut).ToArray());

        HeapInspection inspection = PoolInspector.InspectHeap(mapping, heapOffset, heapLength);
        Assert.True(inspection.Opens);
        Assert.True(inspection.OpensReadOnly);
        HeapProblem first = inspection.Problems[0];
        Assert.Equal(HeapField.MediaError, first.Field);
        Assert.Equal(PoolProblemSeverity.ReadOnly, first.Severity);
        using TransactionalHeap again = TransactionalHeap.Open(mapping, heapOffset, heapLength);
        Assert.Equal(first.Message, again.ReadOnlyReason);
        Assert.False(mapping.IsDisposed);
    }

    [Fact]
    public void AHeapWhosePrimaryHeaderPageIsLostOpensReadOnlyFromTheBackupAndBothCopiesLostIsATypedError()
    {
        (string path, long heapOffset, long heapLength) = CrashedPoolWithHeap();
        using PmemFile file = PmemFile.Open(path, writable: true);
        using DaxMapping mapping = file.Map();
        using PmemPool pool = PmemPool.Open(mapping, Layout);
        // The file ends after the primary header's page: the backup copy (and all after it) is past the end.
        Truncation.Truncate(path, heapOffset + HeapLayout.BackupOffset);
        for (int attempt = 0; attempt < 2; attempt++)
        {
            TransactionalHeap heap = TransactionalHeap.Open(mapping, heapOffset, heapLength);
            Assert.True(heap.IsReadOnly);
            Assert.Contains("the backup heap header", heap.ReadOnlyReason, StringComparison.Ordinal);
            heap.Dispose();
        }
        // The file ends before the heap: neither copy can be read.
        Truncation.Truncate(path, heapOffset);
        for (int attempt = 0; attempt < 2; attempt++)
        {
            TransactionalHeapFormatException e = Assert.Throws<TransactionalHeapFormatException>(() => TransactionalHeap.Open(mapping, heapOffset, heapLength));
            Assert.Equal(HeapField.MediaError, e.Field);
            Assert.IsType<PmemMediaErrorException>(e.InnerException);
        }
        HeapProblem problem = Assert.Single(PoolInspector.InspectHeap(mapping, heapOffset, heapLength).Problems);
        Assert.Equal(HeapField.MediaError, problem.Field);
        Assert.Equal(PoolProblemSeverity.Error, problem.Severity);
    }

    // A pool file holding a heap with one transaction in flight on lane 0 (eight 1 KiB ranges of the root
    // declared and changed), as a crash at that instant leaves it; a skip when no page-cache file system
    // (truncating under a mapping needs one) or no safe copy is there.
    private (string Path, long HeapOffset, long HeapLength) CrashedPoolWithHeap()
    {
        string dir = TruncationDirectory.Create("directpmem-heapmedia-");
        _dirs.Add(dir);
        string live = Path.Combine(dir, "live");
        string crashed = Path.Combine(dir, "crashed");
        using PmemPool pool = TestPools.CreateFile(live, PoolSize, Layout);
        using TransactionalHeap heap = pool.CreateTransactionalHeap(new TransactionalHeapOptions { LaneCount = 1, LaneLogSize = LaneLogSize, RootSize = Ranges * RangeLength, ObjectSize = 64 });
        Transaction tx = heap.Begin();
        for (int i = 0; i < Ranges; i++)
        {
            tx.Modify(heap.RootOffset + i * RangeLength, RangeLength).Fill((byte)(i + 1));
        }
        File.WriteAllBytes(crashed, pool.Mapping.GetReadOnlySpan(0, (int)pool.Size).ToArray());
        tx.Dispose();
        return (crashed, heap.RegionOffset, heap.RegionLength);
    }
}
