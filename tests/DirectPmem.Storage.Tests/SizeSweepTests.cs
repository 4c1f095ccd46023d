using DirectPmem.Mapping;
using DirectPmem.Storage.Transactions;
using Xunit;

namespace DirectPmem.Storage.Tests;

/// <summary>
/// Every public entry point of the storage layer that takes a size, length or offset, given the
/// values that break arithmetic: near long.MaxValue, values that overflow only once aligned,
/// negative, zero. Each is refused with an <see cref="ArgumentException"/> naming the parameter or
/// the library's typed exception, and the message names the value; never an
/// <see cref="OverflowException"/>, never a crash.
/// </summary>
public sealed class SizeSweepTests : IDisposable
{
    private const string Layout = "size-sweep";
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>The values every entry point meets.</summary>
    public static readonly long[] Values =
    [
        long.MaxValue,
        long.MaxValue - 4096 + 1,
        long.MaxValue - 64 + 1,
        long.MaxValue & ~4095L,
        (long.MaxValue & ~4095L) + 1,
        long.MinValue,
        -1,
        -4096,
        0,
    ];

    /// <summary>Entry points; offsets where 0 is valid are marked so that zero is left out for them.</summary>
    public static readonly string[] EntryPoints =
    [
        "PmemPool.CreateFile(size)",
        "PoolCreateOptions.ReservedLength",
        "PmemPool.SetRoot(offset)",
        "PmemLog.LengthFor(capacity)",
        "PmemLog.Create(offset)",
        "PmemLog.Create(length)",
        "PmemLog.Open(offset)",
        "PmemLog.Read(lsn)",
        "PmemLog.ReadFrom(lsn)",
        "PmemLog.Truncate(lsn)",
        "TransactionalHeap.Create(offset)",
        "TransactionalHeap.Create(length)",
        "TransactionalHeap.Open(offset)",
        "TransactionalHeap.Open(length)",
        "TransactionalHeap.IsAllocated(objectOffset)",
        "Transaction.AddRange(offset)",
        "Transaction.AddRange(length)",
        "Transaction.GetSpan(offset)",
    ];

    // The sweep creates heaps again and again in one mapping: replacing the last one is intended.
    private static readonly TransactionalHeapOptions s_replace = new() { ReplaceExisting = true };

    private static readonly HashSet<string> s_zeroIsValid = ["PmemPool.SetRoot(offset)", "PoolCreateOptions.ReservedLength", "PmemLog.Read(lsn)", "PmemLog.ReadFrom(lsn)", "PmemLog.Truncate(lsn)", "TransactionalHeap.Create(offset)", "TransactionalHeap.Open(offset)", "Transaction.AddRange(length)"];

    public static TheoryData<string, long> Cases()
    {
        var data = new TheoryData<string, long>();
        foreach (string entry in EntryPoints)
        {
            foreach (long value in Values)
            {
                if (value != 0 || !s_zeroIsValid.Contains(entry))
                    data.Add(entry, value);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ASizeOrOffsetThatBreaksArithmeticIsRefusedNamingIt(string entry, long value)
    {
        Exception e = Assert.ThrowsAny<Exception>(() => Run(entry, value));
        Assert.True(e is ArgumentException or PmemException, $"{entry} with {value} threw {e.GetType()}: {e}");
        SizeRefusal.AssertNamesValue(e, $"{entry} with {value}", value);
    }

    private void Run(string entry, long value)
    {
        const long size = 4L << 20;
        switch (entry)
        {
            case "PmemPool.CreateFile(size)":
                TestPools.CreateFile(_dir.File("p"), value, Layout).Dispose();
                return;
            case "PoolCreateOptions.ReservedLength":
                TestPools.CreateFile(_dir.File("p"), size, Layout, new PoolCreateOptions { ReservedLength = value }).Dispose();
                return;
        }
        using DaxMapping mapping = DaxMapping.CreateAnonymous(size);
        using PmemPool pool = TestPools.Create(mapping, Layout);
        switch (entry)
        {
            case "PmemPool.SetRoot(offset)":
                pool.SetRoot(value);
                return;
            case "PmemLog.LengthFor(capacity)":
                _ = PmemLog.LengthFor(value);
                return;
            case "PmemLog.Create(offset)":
                PmemLog.Create(pool, value, 1L << 20);
                return;
            case "PmemLog.Create(length)":
                PmemLog.Create(pool, pool.DataOffset, value);
                return;
            case "PmemLog.Open(offset)":
                PmemLog.Open(pool, value);
                return;
        }
        if (entry.StartsWith("PmemLog.", StringComparison.Ordinal))
        {
            PmemLog log = PmemLog.Create(pool, pool.DataOffset, 1L << 20);
            log.Append([1, 2, 3]);
            switch (entry)
            {
                case "PmemLog.Read(lsn)":
                    log.Read(value, new byte[16]);
                    return;
                case "PmemLog.ReadFrom(lsn)":
                    log.ReadFrom(value);
                    return;
                case "PmemLog.Truncate(lsn)":
                    log.Truncate(value);
                    return;
            }
        }
        switch (entry)
        {
            case "TransactionalHeap.Create(offset)":
                TransactionalHeap.Create(mapping, value, 1L << 20, s_replace).Dispose();
                return;
            case "TransactionalHeap.Create(length)":
                TransactionalHeap.Create(mapping, 0, value, s_replace).Dispose();
                return;
            case "TransactionalHeap.Open(offset)":
                TransactionalHeap.Create(mapping, 0, 1L << 20, s_replace).Dispose();
                TransactionalHeap.Open(mapping, value, 1L << 20).Dispose();
                return;
            case "TransactionalHeap.Open(length)":
                TransactionalHeap.Create(mapping, 0, 1L << 20, s_replace).Dispose();
                TransactionalHeap.Open(mapping, 0, value).Dispose();
                return;
        }
        using TransactionalHeap heap = TransactionalHeap.Create(mapping, 0, 1L << 20, s_replace);
        switch (entry)
        {
            case "TransactionalHeap.IsAllocated(objectOffset)":
                heap.IsAllocated(value);
                return;
        }
        using Transaction tx = heap.Begin();
        switch (entry)
        {
            case "Transaction.AddRange(offset)":
                tx.AddRange(value, 8);
                return;
            case "Transaction.AddRange(length)":
                tx.AddRange(heap.RootOffset, value);
                return;
            case "Transaction.GetSpan(offset)":
                tx.GetSpan(value, 8);
                return;
            default:
                throw new ArgumentOutOfRangeException(nameof(entry), entry, "no such entry point in the sweep");
        }
    }
}
