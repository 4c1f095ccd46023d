using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using DirectPmem.Mapping;

namespace DirectPmem.Storage;

/// <summary>
/// The commit step machine of a <see cref="PmemLog"/>, the code every append runs (and the crash
/// sweeps and concurrency tests drive): reserve space, (the caller copies and drains its frame),
/// complete in LSN order, and persist the tail word lazily. It owns the volatile cursors and the
/// waiting policy; it does not know the frame format.
/// </summary>
/// <remarks>
/// <para>Cursors, all LSNs: <c>Reserved</c> (the end of the last reservation), <c>Completed</c>
/// (every record before it is drained: the acknowledged tail), <c>Durable</c> (the value of the
/// persisted tail word) and <c>Head</c> (the persisted head word).</para>
/// <para>Invariant that makes a lazy tail word safe: a frame starts only before
/// <c>Durable + window</c>, so after a crash every record that was in flight starts in
/// [tail word, tail word + window), which recovery scans and clears.</para>
/// <para>Completion with help: an appender whose record is drained while an earlier one is not
/// yet completed announces it (stores its end in the done slot of its start) and waits. The
/// appender that moves the completion cursor (the one whose record starts at it) moves it on over
/// every announced record after its own, in one store, and wakes their owners. So a waiter never
/// writes the cursor's line, and an appender never waits for a descheduled successor to run
/// again: only a record still being copied holds the others up. At any moment exactly one thread
/// may store the cursor: the owner of the record that starts at its value (a helper that saw the
/// announcement skips that value, so the owner then finds the cursor past its end).</para>
/// </remarks>
internal sealed class LogCommit
{
    private readonly PmemPool _pool;
    private readonly DaxMapping _mapping;
    private readonly long _tailWordOffset;
    private readonly long _ringOffset;
    private readonly long _capacity;
    private readonly long _window;
    private readonly Lock _tailGate = new();
    private readonly object _sleepGate = new();
    private Cursors _cursors;
    private Exception? _failure;

    // The done slots: the end of an announced record (drained, waiting for its predecessors) at
    // index (start / DoneGranule) mod DoneSlots; only frames of at most DoneSpan bytes are announced.
    // A slot per 16 bytes of LSN, although frames start on 64-byte lines: the slots of consecutive
    // 128-byte frames (64 B records) are then 64 bytes apart, on different cache lines, so two
    // appenders announcing side by side never write the same line (the layout measured so far).
    // Telling the record at the completion cursor c from a stale or a later one needs no tag:
    // every record that maps to c's slot starts at c + k * DoneSpan, so an earlier one (k < 0)
    // ended at or before c and a later one (k > 0) ends after c + DoneSpan, while the record at c
    // ends in (c, c + DoneSpan]. Volatile memory only: nothing of it reaches the media.
    private const int DoneSlots = 1024;
    private const int DoneGranule = 16;
    private const long DoneSpan = (long)DoneSlots * DoneGranule;
    private readonly long[] _done = new long[DoneSlots];

    // How long a waiting appender spins (PAUSE) before it yields, and yields before it blocks. A
    // predecessor that is running finishes its copy in well under a microsecond at these sizes;
    // with more appenders than CPUs one that is not done is usually off the CPU, and spinning
    // keeps it off: the 4- and 8-thread concurrency tests on 2 CPUs ran 1M appends in 15 and 18 s
    // with a 20 us spin, 6 and 7.5 s with 3 us, 3.8 and 6 s with 1 us (15:34-15:36 UTC, load 3-4).
    private static readonly long s_spinTicks = Stopwatch.Frequency / 1_000_000; // 1 us
    private static readonly long s_yieldTicks = Stopwatch.Frequency / 1_000; // 1 ms
    private const int SleepTimeoutMilliseconds = 1;

    [StructLayout(LayoutKind.Explicit, Size = 384)]
    private struct Cursors
    {
        // One cache line each (and a line of padding on either side): appenders on different
        // cores write Reserved and Completed; Durable (the tail word's value), Head and Sleepers
        // are read on every append and written rarely, so they must not share a line with a
        // written cursor.
        [FieldOffset(64)] public long Reserved;
        [FieldOffset(128)] public long Completed;
        [FieldOffset(192)] public long Durable;
        [FieldOffset(256)] public long Head;
        [FieldOffset(320)] public int Sleepers;
    }

    internal LogCommit(PmemPool pool, long tailWordOffset, long ringOffset, long capacity, long window, long head, long durableTail, long tail)
    {
        _pool = pool;
        _mapping = pool.Mapping;
        _tailWordOffset = tailWordOffset;
        _ringOffset = ringOffset;
        _capacity = capacity;
        _window = window;
        _cursors.Head = head;
        _cursors.Reserved = tail;
        _cursors.Completed = tail;
        _cursors.Durable = durableTail;
    }

    internal long Head => Volatile.Read(ref _cursors.Head);

    internal long Tail => Volatile.Read(ref _cursors.Completed);

    internal long Durable => Volatile.Read(ref _cursors.Durable);

    internal long Reserved => Volatile.Read(ref _cursors.Reserved);

    internal bool HasFailed => Volatile.Read(ref _failure) is not null;

    /// <summary>Moves the volatile head after the head word was published.</summary>
    internal void SetHead(long lsn) => Volatile.Write(ref _cursors.Head, lsn);

    /// <summary>
    /// Step 1: lock-free reservation of <paramref name="frameBytes"/> at the volatile reservation
    /// cursor, if the ring has room after the head and the frame starts inside the window after the
    /// tail word (else the tail word is persisted first: see <see cref="PersistTail"/>).
    /// </summary>
    internal long Reserve(int frameBytes)
    {
        ThrowIfFailed();
        while (true)
        {
            long start = Volatile.Read(ref _cursors.Reserved);
            long end = start + frameBytes;
            long head = Volatile.Read(ref _cursors.Head);
            if (end - head > _capacity)
            {
                // A disposed pool is never reported as a full log.
                ThrowIfPoolDisposed();
                throw new LogFullException(frameBytes, _capacity - (start - head), _capacity);
            }
            if (start - Volatile.Read(ref _cursors.Durable) >= _window)
            {
                WaitForWindow(start);
                continue;
            }
            if (Interlocked.CompareExchange(ref _cursors.Reserved, end, start) == start)
            {
                return start;
            }
        }
    }

    /// <summary>
    /// The slow path of a reservation past the window: persist the tail word up to the completion
    /// cursor, waiting for the appenders still copying when that is not yet far enough. Appenders
    /// persist the tail word when they pass half the window (<see cref="Commit"/>), so this is
    /// taken only when the window is small next to the records in flight.
    /// </summary>
    private void WaitForWindow(long start)
    {
        Backoff backoff = default;
        while (start - Volatile.Read(ref _cursors.Durable) >= _window)
        {
            if (Volatile.Read(ref _cursors.Completed) > start - _window)
            {
                PersistTail(wait: true);
            }
            else
            {
                backoff.Wait(this, start - _window, WaitFor.CompletedPast);
            }
        }
    }

    /// <summary>
    /// Step 3 without waiting, for the drained record [<paramref name="start"/>, <paramref name="end"/>):
    /// if every earlier record completed, move the completion cursor over it (and over the announced
    /// records after it); else announce it, so that the appender that moves the cursor moves it over
    /// this one too. Returns whether the completion cursor covers the record (it is acknowledged).
    /// </summary>
    /// <returns>Whether the record is completed, by this call or by a helper; the completer's new cursor in <paramref name="completed"/> (0 when this call did not move it).</returns>
    internal bool TryComplete(long start, long end, out long completed)
    {
        completed = 0;
        long at = Volatile.Read(ref _cursors.Completed);
        if (at == start)
        {
            completed = Complete(end);
            return true;
        }
        if (at >= end)
        {
            return true;
        }
        Announce(start, end);
        // The predecessor may have moved the cursor to this record's start without seeing the
        // announcement (its read of the slot crossed this store): then this appender moves it.
        at = Volatile.Read(ref _cursors.Completed);
        if (at == start)
        {
            completed = Complete(end);
            return true;
        }
        return at >= end;
    }

    // Announces a drained record: its end in the done slot of its start (a release store: the
    // drain is before it). A frame longer than DoneSpan is not announced; its owner moves the
    // cursor over it itself.
    private void Announce(long start, long end)
    {
        if (end - start <= DoneSpan)
        {
            Volatile.Write(ref _done[(start / DoneGranule) & (DoneSlots - 1)], end);
        }
    }

    // Only the appender whose record starts at the completion cursor moves it: a plain store, over
    // its own record and every announced one after it. (No locked instruction here: right after a
    // flush and drain, one waits for the write-backs.)
    private long Complete(long end)
    {
        while (true)
        {
            long next = Volatile.Read(ref _done[(end / DoneGranule) & (DoneSlots - 1)]);
            if (next <= end || next - end > DoneSpan)
            {
                break;
            }
            end = next;
        }
        Volatile.Write(ref _cursors.Completed, end);
        WakeSleepers();
        return end;
    }

    /// <summary>
    /// Step 3 for the record [<paramref name="start"/>, <paramref name="end"/>), whose copy is
    /// drained: wait until every earlier record is durable and the completion cursor covers this
    /// one (moved by this appender, or by the predecessor that found it announced), and return.
    /// That is the acknowledgement: no tail is published (the record validates itself). The
    /// appender that takes the completion cursor past half the window after the tail word persists
    /// the tail word (one 8-byte publish per half window of bytes, amortised).
    /// </summary>
    internal void Commit(long start, long end)
    {
        long completed;
        if (SpinUntilCompletedAt(start))
        {
            // The predecessor completed while this appender spun (the usual case when every
            // appender has a CPU): move the cursor as before, no announcement written.
            completed = Complete(end);
        }
        else if (!TryComplete(start, end, out completed))
        {
            // Announced: wait until the cursor reaches this record (the predecessor did not see
            // the announcement: move it) or passes it (a helper moved it over this record).
            WaitForPredecessors(start);
            if (Volatile.Read(ref _cursors.Completed) != start)
            {
                return;
            }
            completed = Complete(end);
        }
        AfterComplete(completed);
    }

    /// <summary>After a completion: the appender that takes the cursor past half the window persists the tail word.</summary>
    internal void AfterComplete(long end)
    {
        if (end - Volatile.Read(ref _cursors.Durable) >= _window >> 1)
        {
            PersistTail(wait: false);
        }
    }

    /// <summary>
    /// Persists the completion cursor as the tail word (one failure-atomic 8-byte store, flush and
    /// drain) if it is ahead of it. Callers that must see the word move (a truncation, a full
    /// window, Dispose) wait for the gate; an appender passing the half window does not.
    /// </summary>
    internal void PersistTail(bool wait)
    {
        if (wait)
        {
            _tailGate.Enter();
        }
        else if (!_tailGate.TryEnter())
        {
            return;
        }
        try
        {
            long durable = Volatile.Read(ref _cursors.Durable);
            long completed = Volatile.Read(ref _cursors.Completed);
            if (completed > durable)
            {
                Diagnostics.StorageCounts.OnPublish(_pool, _ringOffset, _capacity, durable, completed);
                _mapping.Publish(_tailWordOffset, (ulong)completed);
                Volatile.Write(ref _cursors.Durable, completed);
                WakeSleepers();
            }
        }
        catch (Exception e)
        {
            Fail(e);
            ThrowIfPoolDisposed();
            throw;
        }
        finally
        {
            _tailGate.Exit();
        }
    }

    // Spins (PAUSE) up to the spin budget for the completion cursor to reach start, before the
    // record is announced. An announcement costs the predecessor a read of a line this core wrote,
    // on every completion while appenders run side by side (measured idle, 2 threads, 64 B: 2.2-2.7
    // Mops/s announcing at once against 3.6-3.7 spinning first); help pays only when the
    // predecessor is off its CPU, and then it is slow by far more than the budget. Nothing is
    // announced yet, so the cursor stops at start: only this appender may move it from there.
    private bool SpinUntilCompletedAt(long start)
    {
        Backoff spin = default;
        while (Volatile.Read(ref _cursors.Completed) != start)
        {
            ThrowIfFailed();
            if (!spin.Spin())
            {
                return false;
            }
        }
        return true;
    }

    // Until the completion cursor reaches start: it then is start (this appender moves it) or past
    // this record's end (a helper moved it); it never stops inside a record.
    private void WaitForPredecessors(long start)
    {
        Backoff backoff = default;
        while (Volatile.Read(ref _cursors.Completed) < start)
        {
            backoff.Wait(this, start, WaitFor.CompletedAt);
        }
    }

    private enum WaitFor
    {
        CompletedAt,
        CompletedPast,
    }

    /// <summary>
    /// Waiting for another appender: PAUSE while it is likely running (about 1 us), then yield
    /// the CPU (about 1 ms more), then block until a completion or a publish wakes this thread,
    /// so that a predecessor that was descheduled gets a CPU back instead of competing with a
    /// spinner (on a 2-CPU machine a spinning waiter takes the CPU the stalled appender needs).
    /// </summary>
    private struct Backoff
    {
        private long _since;
        private int _rounds;
        private int _phase;

        /// <summary>One PAUSE of the spin phase; false once the spin budget (about 1 us) is spent.</summary>
        public bool Spin()
        {
            bool within = true;
            if (_rounds++ == 0)
            {
                _since = Stopwatch.GetTimestamp();
            }
            else if ((_rounds & 63) == 0 && Stopwatch.GetTimestamp() - _since > s_spinTicks)
            {
                within = false;
            }
            Pause();
            return within;
        }

        public void Wait(LogCommit log, long value, WaitFor what)
        {
            log.ThrowIfFailed();
            if (_phase == 0)
            {
                if (!Spin())
                {
                    _phase = 1;
                }
            }
            else if (_phase == 1)
            {
                if (Stopwatch.GetTimestamp() - _since > s_spinTicks + s_yieldTicks)
                {
                    _phase = 2;
                }
                Thread.Yield();
            }
            else
            {
                log.Sleep(value, what);
            }
        }
    }

    /// <summary>
    /// Blocks until a completion or publish (or a failure) wakes the thread. The sleeper counts
    /// itself, then looks at the cursors once more before it waits; a waker stores its cursor, then
    /// reads the count. The two plain store-then-load sequences may cross (x86 lets a load pass an
    /// earlier store), and a wake-up missed that way costs at most the 1 ms timeout; a locked
    /// instruction on every append to close that gap would cost more than it saves.
    /// </summary>
    private void Sleep(long value, WaitFor what)
    {
        lock (_sleepGate)
        {
            Interlocked.Increment(ref _cursors.Sleepers);
            try
            {
                if (!Ready(value, what))
                {
                    Monitor.Wait(_sleepGate, SleepTimeoutMilliseconds);
                }
            }
            finally
            {
                Interlocked.Decrement(ref _cursors.Sleepers);
            }
        }
    }

    // What a waiter waits for: the completion cursor at its start, or past a point (a window); or a failure.
    private bool Ready(long value, WaitFor what)
    {
        if (Volatile.Read(ref _failure) is not null)
        {
            return true;
        }
        long completed = Volatile.Read(ref _cursors.Completed);
        return what == WaitFor.CompletedAt ? completed >= value : completed > value;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WakeSleepers()
    {
        if (Volatile.Read(ref _cursors.Sleepers) != 0)
        {
            WakeSleepersSlow();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void WakeSleepersSlow()
    {
        lock (_sleepGate)
        {
            Monitor.PulseAll(_sleepGate);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Pause()
    {
        if (X86Base.IsSupported)
        {
            X86Base.Pause();
        }
        else
        {
            Thread.SpinWait(1);
        }
    }

    /// <summary>Throws the pool's <see cref="ObjectDisposedException"/> if it was disposed: what any operation racing its Dispose reports.</summary>
    private void ThrowIfPoolDisposed() => _pool.ThrowIfDisposed();

    internal void Fail(Exception e)
    {
        Interlocked.CompareExchange(ref _failure, e, null);
        WakeSleepers();
    }

    internal void ThrowIfFailed()
    {
        if (Volatile.Read(ref _failure) is Exception failure)
        {
            // An append that failed because the pool was disposed under it is not a damaged log.
            ThrowIfPoolDisposed();
            throw new PmemException("An earlier append failed while writing, so later records cannot become durable in order; reopen the log to recover.", failure);
        }
    }}
