using DirectPmem.Storage.Transactions;
using DirectPmem.Testing;
using Xunit;
using static DirectPmem.Storage.Tests.Transactions.HeapState;

namespace DirectPmem.Storage.Tests.Transactions;

/// <summary>
/// Bytes flipped in the heap header and the lanes (generation words, undo and redo logs): opening gives a
/// <see cref="TransactionalHeapFormatException"/> or a consistent state, never another exception.
/// </summary>
public sealed class UndoLogFuzzTests(ITestOutputHelper output)
{
    private static readonly long LanesEnd = HeapLayout.HeaderBlock + Options.LaneCount * (HeapLayout.LaneHeader + 2L * Options.LaneLogSize);

    private sealed record Image(byte[] Media, string Expected, long InFlightStart, long InFlightEnd);

    /// <summary>A heap at rest (disposed, so every lane word confirms its last commit) after the allocator workload (its logs full of stale entries).</summary>
    private static Image AtRest()
    {
        using SimulatedDevice device = SimulatedDevice.Create(Length);
        TransactionalHeap heap = Create(device.Mapping);
        TransactionCrashTests.Objects(heap, () => { });
        heap.Dispose();
        return new Image(device.GetMediaCopy(), Describe(heap), 0, 0);
    }

    /// <summary>A transaction in flight whose changes are all durable: recovery must undo exactly them.</summary>
    private static Image InFlight()
    {
        using SimulatedDevice device = SimulatedDevice.Create(Length);
        TransactionalHeap heap = Create(device.Mapping);
        TransactionCrashTests.Objects(heap, () => { });
        string before = Describe(heap);
        long r = heap.RootOffset;
        Transaction tx = heap.Begin();
        Fill(tx.Modify(r + 64, 200), 0xEE);
        tx.Free(device.Mapping.GetReadOnlyRef<long>(r + 8));
        long o = tx.Allocate();
        Fill(tx.GetSpan(o, 64), 0xDD);
        tx.GetRef<long>(r + 8) = o;
        Fill(tx.Modify(r + 400, 100), 0xCC);
        // Generations alternate between the lane's two logs: the one in flight is the
        // log whose first entry has the higher generation.
        long logs = HeapLayout.HeaderBlock + tx.Lane * (HeapLayout.LaneHeader + 2L * Options.LaneLogSize) + HeapLayout.LaneHeader;
        long other = logs + Options.LaneLogSize;
        long log = device.Mapping.GetReadOnlyRef<long>(other + 8) > device.Mapping.GetReadOnlyRef<long>(logs + 8) ? other : logs;
        long end = log + tx.LogBytesUsed;
        device.Mapping.Persist(0, Length);
        return new Image(device.GetMediaCopy(), before, log, end);
    }

    /// <summary>
    /// Redo commits the heap was not disposed after (the last two of each lane stay replayable), with
    /// every line on the media. A damaged byte in a replayable commit's log cannot be told from a commit
    /// torn by the crash: recovery skips that commit and may replay the one before it over bytes the
    /// damaged one had changed (documented, like a damaged undo entry of a transaction in flight), so
    /// flips in the logs are only required to open safely; flips elsewhere must give the exact state.
    /// </summary>
    private static Image RedoReplayable()
    {
        using SimulatedDevice device = SimulatedDevice.Create(Length);
        TransactionalHeap heap = Create(device.Mapping);
        TransactionCrashTests.RedoObjects(heap, () => { });
        TransactionCrashTests.Redo(heap, () => { });
        device.Mapping.Persist(0, Length);
        long logs = HeapLayout.HeaderBlock + HeapLayout.LaneHeader;
        return new Image(device.GetMediaCopy(), Describe(heap), logs, LanesEnd);
    }

    [Fact]
    public void FlippedBytesInHeaderAndLanesGiveATypedErrorOrAConsistentState()
    {
        Image[] images = [AtRest(), InFlight(), RedoReplayable()];
        var random = new Random(0x51F7);
        int cases = TxKnobs.FuzzCases, typed = 0, recovered = 0, unchecked_ = 0;
        for (int n = 0; n < cases; n++)
        {
            Image image = images[n % images.Length];
            byte[] mutated = (byte[])image.Media.Clone();
            int flips = 1 + random.Next(3);
            var words = new HashSet<long>();
            bool hitInFlight = false;
            while (words.Count < flips)
            {
                long at = random.NextInt64(LanesEnd);
                if (!words.Add(at / 8))
                {
                    continue;
                }
                mutated[at] ^= (byte)(1 + random.Next(255));
                hitInFlight |= at >= image.InFlightStart && at < image.InFlightEnd;
            }
            using SimulatedDevice device = SimulatedDevice.FromImage(mutated);
            TransactionalHeap heap;
            try
            {
                heap = Open(device.Mapping);
            }
            catch (TransactionalHeapFormatException)
            {
                typed++;
                continue;
            }
            // Anything else escapes and fails the test with the case number in the stack.
            string state = Describe(heap);
            if (hitInFlight)
            {
                // A damaged entry of the transaction in flight cannot be told from one torn by the
                // crash: the rollback stops at it (documented); the open still completes safely.
                unchecked_++;
                continue;
            }
            Assert.True(state == image.Expected, $"case {n}: flips at {string.Join(",", words.Select(w => $"0x{w * 8:x}"))} gave an inconsistent state");
            recovered++;
        }
        output.WriteLine($"{cases} cases: {typed} typed errors, {recovered} consistent recoveries, {unchecked_} hit the in-flight log");
        Assert.True(typed > 0 && recovered > 0);
    }

    [Fact]
    public void GarbageInTheUndoLogsIsIgnoredAndADamagedWordIsReported()
    {
        Image image = AtRest();
        var random = new Random(7);
        for (int n = 0; n < 50; n++)
        {
            byte[] mutated = (byte[])image.Media.Clone();
            for (int lane = 0; lane < Options.LaneCount; lane++)
            {
                long log = HeapLayout.HeaderBlock + lane * (HeapLayout.LaneHeader + 2L * Options.LaneLogSize) + HeapLayout.LaneHeader;
                random.NextBytes(mutated.AsSpan((int)log, 2 * Options.LaneLogSize));
            }
            using SimulatedDevice device = SimulatedDevice.FromImage(mutated);
            TransactionalHeap heap = Open(device.Mapping);
            Assert.False(heap.Recovery.RolledBack);
            Assert.Equal(image.Expected, Describe(heap));
        }
        // Every single-byte change of a generation word is detected.
        for (int b = 0; b < 8; b++)
        {
            for (int v = 1; v < 256; v += 17)
            {
                byte[] mutated = (byte[])image.Media.Clone();
                mutated[HeapLayout.HeaderBlock + b] ^= (byte)v;
                using SimulatedDevice device = SimulatedDevice.FromImage(mutated);
                Assert.Equal(HeapField.LaneGeneration, Assert.Throws<TransactionalHeapFormatException>(() => Open(device.Mapping)).Field);
            }
        }
    }
}
