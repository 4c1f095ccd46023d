namespace DirectPmem.Storage.Transactions;

/// <summary>What opening a <see cref="TransactionalHeap"/> found and undid.</summary>
public sealed class HeapRecovery
{
    internal HeapRecovery(int lanesRolledBack, int entriesRestored, long bytesRestored, int allocatedObjects)
    {
        LanesRolledBack = lanesRolledBack;
        EntriesRestored = entriesRestored;
        BytesRestored = bytesRestored;
        AllocatedObjects = allocatedObjects;
    }

    /// <summary>How many lanes held a transaction that had not finished (each was rolled back).</summary>
    public int LanesRolledBack { get; }

    /// <summary>How many undo entries were written back.</summary>
    public int EntriesRestored { get; }

    /// <summary>How many bytes the rollback wrote back.</summary>
    public long BytesRestored { get; }

    /// <summary>How many objects are allocated after recovery.</summary>
    public int AllocatedObjects { get; }

    /// <summary>
    /// How many redo commits the open replayed: commits that were durable (their records and redo
    /// entries on the media) but whose home bytes may not have been, written home again. Replaying is
    /// idempotent; it is part of a normal restart after a crash, not a rollback.
    /// </summary>
    public int CommitsReplayed { get; internal init; }

    /// <summary>How many redo entries the open replayed.</summary>
    public int EntriesReplayed { get; internal init; }

    /// <summary>Which header copy the open restored from the other (a damaged or torn copy), or <see cref="PoolHeaderRepair.None"/>.</summary>
    public PoolHeaderRepair HeaderRepair { get; internal init; }

    /// <summary>Whether a transaction was rolled back.</summary>
    public bool RolledBack => LanesRolledBack > 0;

    /// <inheritdoc/>
    public override string ToString() =>
        $"{LanesRolledBack} lane(s) rolled back, {EntriesRestored} entries / {BytesRestored} bytes restored, {CommitsReplayed} commit(s) / {EntriesReplayed} entries replayed, {AllocatedObjects} objects allocated";
}
