using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace DirectPmem.Mapping;

/// <summary>
/// Lets <see cref="DaxMapping.Dispose"/> wait for operations in progress on other threads without
/// an interlocked instruction on the operations' path (a hazard pointer with an asymmetric fence).
/// </summary>
/// <remarks>
/// <para>
/// Each thread that runs a mapping operation owns one slot. An operation publishes the mapping's id
/// in its slot with a plain store (a number, not a reference: a reference store would call the GC
/// write barrier on every operation), then reads the mapping's disposed flag with a plain load; it clears
/// the slot when done. Dispose sets the flag (interlocked), then runs
/// <see cref="Interlocked.MemoryBarrierProcessWide"/> (membarrier: every other CPU drains its store
/// buffer), then waits until no slot names the mapping. After the process-wide barrier, a thread
/// either has its slot store visible to Dispose (which waits for it) or performs its load after
/// the flag was set (and throws ObjectDisposedException). That is what an interlocked increment per
/// operation would give, without the locked instruction, which on this machine serialises behind
/// the CLWB of the previous persist and cost about 100 ns per persist (measured, see the report).
/// </para>
/// <para>
/// Operations never run user code and never nest on one thread, so one slot per thread is enough.
/// Slots of threads that ended are reused.
/// </para>
/// </remarks>
internal sealed class OperationSlots
{
    [ThreadStatic]
    private static OperationSlots? t_slot;

    private static readonly Lock s_gate = new();
    private static OperationSlots[] s_all = [];

    // The id of the mapping whose operation this thread is running, or 0.
    private long _active;
    private Thread? _owner;

    /// <summary>Publishes <paramref name="mapping"/> (a mapping's id, never 0) in the calling thread's slot; the caller checks its disposed flag next.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static OperationSlots Enter(long mapping)
    {
        OperationSlots slot = ForThisThread();
        slot.Publish(mapping);
        return slot;
    }

    /// <summary>The calling thread's slot (a thread-static read; the first call on a thread registers one).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static OperationSlots ForThisThread() => t_slot ?? Register();

    /// <summary>Publishes <paramref name="mapping"/> (a mapping's id, never 0) in this slot, the calling thread's; the caller checks its disposed flag next.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Publish(long mapping)
    {
        Debug.Assert(mapping != 0);
        Debug.Assert(_active == 0, "mapping operations do not nest");
        // Volatile accesses: neither the JIT nor the CPU moves the later load of the disposed flag
        // above this store, except the CPU's store-load reordering, which Dispose's process-wide
        // barrier closes.
        Volatile.Write(ref _active, mapping);
    }

    /// <summary>Clears the slot: the operation has finished with the mapping.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Exit() => Volatile.Write(ref _active, 0);

    /// <summary>After the caller set the mapping's disposed flag: waits until no thread runs an operation on it.</summary>
    internal static void WaitForOperations(long mapping)
    {
        Interlocked.MemoryBarrierProcessWide();
        OperationSlots[] all = Volatile.Read(ref s_all);
        foreach (OperationSlots slot in all)
        {
            var wait = new SpinWait();
            while (Volatile.Read(ref slot._active) == mapping)
            {
                // Operations are short (a flush, a copy, an msync): spin, then yield.
                wait.SpinOnce();
            }
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static OperationSlots Register()
    {
        lock (s_gate)
        {
            OperationSlots? slot = null;
            foreach (OperationSlots candidate in s_all)
            {
                if (candidate._owner is { IsAlive: false })
                {
                    // The thread ended outside any operation: its slot is free.
                    slot = candidate;
                    break;
                }
            }
            if (slot is null)
            {
                slot = new OperationSlots();
                OperationSlots[] grown = new OperationSlots[s_all.Length + 1];
                s_all.CopyTo(grown, 0);
                grown[^1] = slot;
                Volatile.Write(ref s_all, grown);
            }
            slot._owner = Thread.CurrentThread;
            t_slot = slot;
            return slot;
        }
    }
}
