using DirectPmem.Storage.Transactions;
using Xunit;

namespace DirectPmem.Storage.Tests.Transactions;

public sealed class ReadmeTransactionExampleTests
{
    [Fact]
    public void TheReadmeTransactionExampleRunsAndItsChangesSurviveReopen()
    {
        string dir = Directory.CreateTempSubdirectory("directpmem-tx-readme-").FullName;
        string path = Path.Combine(dir, "app.pool");
        try
        {
            long node;
            // The README's example, with its path in a temporary directory.
            using (PmemPool pool = TestPools.CreateFile(path, 64L << 20, "my-app"))
            {
                TransactionalHeap heap = pool.CreateTransactionalHeap(new TransactionalHeapOptions { LaneCount = 8, ObjectSize = 256 });
                long root = heap.RootOffset;
                using (Transaction tx = heap.Begin())
                {
                    node = tx.Allocate();
                    "payload"u8.CopyTo(tx.GetSpan(node, 7));
                    ref long head = ref tx.GetRef<long>(root);
                    tx.GetSpan(node + 8, 8).Clear();
                    head = node;
                    tx.AddRange(root + 64, 128);
                    tx.GetSpan(root + 64, 128).Fill(0xFF);
                    tx.Commit();
                }
            }
            using (PmemPool pool = PmemPool.OpenFile(path, "my-app"))
            {
                TransactionalHeap heap = pool.OpenTransactionalHeap();
                Assert.Equal(node, pool.Mapping.GetReadOnlyRef<long>(heap.RootOffset));
                Assert.True(heap.IsAllocated(node));
                Assert.True(pool.Mapping.GetReadOnlySpan(node, 7).SequenceEqual("payload"u8));
                Assert.All(pool.Mapping.GetReadOnlySpan(heap.RootOffset + 64, 128).ToArray(), b => Assert.Equal(0xFF, b));
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
