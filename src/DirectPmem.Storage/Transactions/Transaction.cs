using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DirectPmem.Storage.Transactions;

/// <summary>
/// A failure-atomic transaction on a <see cref="TransactionalHeap"/>: change bytes with
/// <see cref="Write"/> (the redo path, one fence per commit), or declare ranges and change them in
/// place through the spans it returns (the undo path, two fences), then <see cref="Commit"/>. After a
/// power failure at any instant, either all of its changes are there or none of them.
/// </summary>
/// <remarks>
/// <para>A small handle (no allocation). Use it in a <c>using</c> statement on one thread:
/// <see cref="Dispose"/> without <see cref="Commit"/> (an early return, an exception) rolls back.
/// Once finished, every member but <see cref="Dispose"/> and <see cref="IsActive"/> throws.</para>
/// <para>The rule: modify persistent data only through <see cref="Write"/>, or through
/// <see cref="GetSpan"/>, <see cref="GetRef{T}"/> or <see cref="Modify"/> of ranges declared in the
/// transaction (<see cref="AddRange"/>) or of objects it allocated (<see cref="Allocate"/>). The span
/// calls make sure the old contents are durable in the undo log before handing out a writable span;
/// declaring a range twice, or ranges that overlap or touch, logs every byte once. A transaction
/// starts on the redo path and moves to the undo path at its first declaration (or at a span over
/// bytes it wrote with <see cref="Write"/>); it stays there.</para>
/// <para>Racing the <see cref="PmemPool.Dispose"/> of the pool the heap was made in
/// (<see cref="PoolTransactions"/>), every step (<see cref="AddRange"/>, <see cref="Write"/>,
/// <see cref="Commit"/>, ...) completes before the pool unmaps or throws
/// <see cref="ObjectDisposedException"/> naming the pool; a commit that returned is durable, one that
/// threw is rolled back by the next open, and <see cref="Dispose"/> never throws for it. Spans and
/// references from <see cref="GetSpan"/>, <see cref="GetRef{T}"/> and <see cref="Modify"/> are
/// valid until the pool is disposed: using one after is a bug the library cannot catch, so a thread
/// that may race the pool's Dispose writes with <see cref="Write"/>, which copies inside the step.</para>
/// </remarks>
public readonly struct Transaction : IDisposable, IEquatable<Transaction>
{
    private readonly Lane? _lane;
    private readonly ulong _token;

    internal Transaction(Lane lane, ulong token)
    {
        _lane = lane;
        _token = token;
    }

    /// <summary>Whether the transaction is still running (neither committed nor rolled back).</summary>
    public bool IsActive => _lane is not null && _lane.IsCurrent(_token);

    /// <summary>The lane the transaction runs on.</summary>
    public int Lane => Current.Index;

    /// <summary>The log bytes this transaction has used in its lane (redo entries while on the redo path, undo entries after).</summary>
    public int LogBytesUsed => Current.LogUsed;

    private Lane Current
    {
        get
        {
            Lane? lane = _lane;
            if (lane is null || !lane.IsCurrent(_token))
            {
                ThrowFinished();
            }
            return lane;
        }
    }

    /// <summary>
    /// Declares that the transaction will modify [<paramref name="offset"/>, <paramref name="offset"/> + <paramref name="length"/>):
    /// the bytes not declared before are copied into the lane's undo log and flushed. The snapshot
    /// is drained before the next writable span is handed out, so several declarations in a row cost one drain.
    /// </summary>
    /// <param name="offset">A mapping offset inside the heap's transactional area.</param>
    /// <param name="length">The number of bytes.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range is outside the transactional area.</exception>
    /// <exception cref="TransactionLogFullException">The lane's undo log cannot hold the range; nothing was written.</exception>
    public void AddRange(long offset, long length) => Current.AddRange(offset, length);

    /// <summary>A writable span over a declared range (or part of one, or of an object allocated in this transaction).</summary>
    /// <param name="offset">The mapping offset.</param>
    /// <param name="length">The number of bytes.</param>
    /// <returns>The span; its old contents are durable in the undo log.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The range is outside the transactional area.</exception>
    /// <exception cref="InvalidOperationException">The range was not declared in this transaction.</exception>
    public Span<byte> GetSpan(long offset, int length) => Current.GetSpan(offset, length);

    /// <summary>Declares the range and returns a writable span over it: <see cref="AddRange"/> then <see cref="GetSpan"/>.</summary>
    /// <param name="offset">The mapping offset.</param>
    /// <param name="length">The number of bytes.</param>
    /// <returns>The span.</returns>
    public Span<byte> Modify(long offset, int length)
    {
        Lane lane = Current;
        lane.AddRange(offset, length);
        return lane.GetSpan(offset, length);
    }

    /// <summary>Declares <c>sizeof(T)</c> bytes at <paramref name="offset"/> and returns a reference to them.</summary>
    /// <typeparam name="T">An unmanaged type.</typeparam>
    /// <param name="offset">The mapping offset, aligned to the size of <typeparamref name="T"/> when that is 2, 4 or 8 bytes (so that it is never torn).</param>
    /// <returns>The reference.</returns>
    public ref T GetRef<T>(long offset) where T : unmanaged
    {
        int size = Unsafe.SizeOf<T>();
        if (size is 2 or 4 or 8 && offset % size != 0)
        {
            throw new ArgumentException($"Offset 0x{offset:x} is not aligned to {size} bytes.", nameof(offset));
        }
        return ref MemoryMarshal.AsRef<T>(Modify(offset, size));
    }

    /// <summary>
    /// Changes [<paramref name="offset"/>, +<paramref name="source"/>.Length) to <paramref name="source"/>
    /// when the transaction commits, as one step (see the remarks on the pool's Dispose).
    /// </summary>
    /// <remarks>
    /// <para>On the redo path (the transaction has not declared a range or taken a span over bytes it
    /// wrote), the bytes are copied into a redo entry in the lane's volatile staging buffer: home memory
    /// keeps showing the old bytes until <see cref="Commit"/> returns, and nothing persistent is written
    /// before Commit, whose one fence makes the entries durable; it then copies them home. Writing the
    /// same bytes twice keeps the later ones. Into an object allocated in this transaction, the bytes are
    /// copied in place at once (it needs neither snapshot nor redo). On the undo path, the range is
    /// declared (its old bytes logged) and the bytes are copied in place at once.</para>
    /// <para>A span over bytes written with Write (<see cref="GetSpan"/>) moves the transaction to the
    /// undo path, which costs the commit its second fence: read them there, or keep a copy.</para>
    /// </remarks>
    /// <param name="offset">The mapping offset of the destination, inside the heap's transactional area.</param>
    /// <param name="source">The bytes to write.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range is outside the transactional area.</exception>
    /// <exception cref="TransactionLogFullException">The lane's log cannot hold the entry; nothing was written.</exception>
    public void Write(long offset, ReadOnlySpan<byte> source) => Current.Write(offset, source);

    /// <summary>
    /// Allocates one fixed-size object. Its contents are undefined (whatever the object held last)
    /// and writable through <see cref="GetSpan"/> at once without a snapshot. Rolled back with the
    /// transaction: after a crash or an abort the object is free again.
    /// </summary>
    /// <returns>The mapping offset of the object.</returns>
    /// <exception cref="HeapFullException">No object is free; nothing was modified.</exception>
    public long Allocate() => Current.Allocate();

    /// <summary>
    /// Frees an object when the transaction commits (it stays allocated if the transaction rolls
    /// back, and no other transaction can allocate it before this one has committed).
    /// </summary>
    /// <param name="objectOffset">The mapping offset of an allocated object.</param>
    /// <exception cref="ArgumentException">The offset is not the start of an object.</exception>
    /// <exception cref="InvalidOperationException">The object is not allocated, or is freed twice in this transaction.</exception>
    public void Free(long objectOffset) => Current.Free(objectOffset);

    /// <summary>
    /// Commits; durable on return. On the redo path: writes the redo entries and the commit entry
    /// that ends them into the lane's log (whole lines, non-temporal stores), flushes the objects
    /// allocated here and the home bytes of the lane's previous commit, drains once (the commit point),
    /// then copies the new bytes home and flushes them (made durable by the lane's next commit, or
    /// replayed by recovery). On the undo path: hashes the logged ranges into the lane's undo record,
    /// flushes the declared ranges and the record, and drains (its second fence).
    /// </summary>
    /// <remarks>
    /// A change to bytes of another lane's commit that recovery might still replay or judge first
    /// settles that commit (its home bytes made durable, its lane word raised): two fences more, only
    /// when two lanes' recent commits touch the same bytes.
    /// </remarks>
    public void Commit() => Current.Commit();

    /// <summary>Rolls back now and ends the transaction: on the redo path nothing was written (no fence); on the undo path the snapshots are written back and persisted.</summary>
    public void Abort() => Current.Abort();

    /// <summary>Rolls back if the transaction is still active; does nothing once it has finished.</summary>
    public void Dispose()
    {
        if (IsActive)
        {
            _lane!.Abort();
        }
    }

    /// <inheritdoc/>
    public bool Equals(Transaction other) => ReferenceEquals(_lane, other._lane) && _token == other._token;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Transaction other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(_lane, _token);

    /// <summary>Whether two handles are the same transaction.</summary>
    /// <param name="left">A handle.</param>
    /// <param name="right">Another handle.</param>
    /// <returns>Whether they are equal.</returns>
    public static bool operator ==(Transaction left, Transaction right) => left.Equals(right);

    /// <summary>Whether two handles are different transactions.</summary>
    /// <param name="left">A handle.</param>
    /// <param name="right">Another handle.</param>
    /// <returns>Whether they differ.</returns>
    public static bool operator !=(Transaction left, Transaction right) => !left.Equals(right);

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void ThrowFinished() =>
        throw new InvalidOperationException("The transaction has finished (committed or rolled back), or was never begun.");
}
