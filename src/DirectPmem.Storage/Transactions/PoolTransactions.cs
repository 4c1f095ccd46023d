using System.Globalization;

namespace DirectPmem.Storage.Transactions;

/// <summary>
/// Puts a <see cref="TransactionalHeap"/> in a <see cref="PmemPool"/>: the heap takes the pool's
/// data area (rounded down to 64 bytes) and the pool's root offset points at it. The pool format
/// is unchanged: the heap is the application's data.
/// </summary>
public static class PoolTransactions
{
    /// <summary>
    /// Formats a heap in the pool's data area, then durably sets the pool's root offset to it (a
    /// crash in between leaves a pool without a root, which <see cref="OpenTransactionalHeap"/> reports).
    /// </summary>
    /// <param name="pool">A writable pool.</param>
    /// <param name="options">The heap geometry; <see cref="TransactionalHeapOptions.Default"/> when null.</param>
    /// <returns>The new heap; it refuses new transactions once the pool is disposed.</returns>
    /// <exception cref="ObjectDisposedException">The pool has been disposed.</exception>
    /// <exception cref="InvalidOperationException">The pool is read-only.</exception>
    public static TransactionalHeap CreateTransactionalHeap(this PmemPool pool, TransactionalHeapOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(pool);
        // Refused before anything is formatted: a disposed or read-only pool's data area is left alone.
        pool.ThrowIfUnwritable();
        TransactionalHeap heap = TransactionalHeap.Create(pool.Mapping, pool.DataOffset, pool.DataLength & ~63L, options);
        heap.Owner = pool;
        pool.SetRoot(pool.DataOffset);
        return heap;
    }

    /// <summary>Opens and recovers the heap whose region is the pool's data area (see <see cref="TransactionalHeap.Open"/>).</summary>
    /// <param name="pool">A writable pool created with <see cref="CreateTransactionalHeap"/>.</param>
    /// <returns>The recovered heap; it refuses new transactions once the pool is disposed.</returns>
    /// <exception cref="ObjectDisposedException">The pool has been disposed.</exception>
    /// <exception cref="TransactionalHeapFormatException">The pool's root does not point at a heap, or the heap is invalid.</exception>
    public static TransactionalHeap OpenTransactionalHeap(this PmemPool pool)
    {
        ArgumentNullException.ThrowIfNull(pool);
        pool.ThrowIfDisposed();
        if (pool.RootOffset != pool.DataOffset)
        {
            throw new TransactionalHeapFormatException(HeapField.Region, pool.DataOffset, string.Create(CultureInfo.InvariantCulture,
                $"The pool's root offset is {pool.RootOffset}, not its data area ({pool.DataOffset}): no transactional heap was created in this pool (or its creation did not finish)."));
        }
        TransactionalHeap heap = TransactionalHeap.Open(pool.Mapping, pool.DataOffset, pool.DataLength & ~63L);
        heap.Owner = pool;
        return heap;
    }
}
