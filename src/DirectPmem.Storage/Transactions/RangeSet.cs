namespace DirectPmem.Storage.Transactions;

/// <summary>
/// The ranges a transaction has declared, sorted by start, with overlapping and adjacent ranges
/// merged. Reused from transaction to transaction: it allocates only when it grows.
/// </summary>
internal sealed class RangeSet
{
    private long[] _starts = new long[16];
    private long[] _ends = new long[16];
    private int _count;
    private long[] _gapStarts = new long[8];
    private long[] _gapEnds = new long[8];
    private int _gapCount;

    public int Count => _count;

    public long StartAt(int index) => _starts[index];

    public long EndAt(int index) => _ends[index];

    public void Clear() => _count = 0;

    /// <summary>Whether [start, end) lies inside one declared range.</summary>
    public bool Covers(long start, long end)
    {
        int i = FirstEndingAfter(start);
        return i < _count && _starts[i] <= start && _ends[i] >= end;
    }

    /// <summary>Whether some declared range shares a byte with [start, end) (touching is not overlapping).</summary>
    public bool Overlaps(long start, long end)
    {
        int i = FirstEndingAfter(start);
        return i < _count && _starts[i] < end;
    }

    /// <summary>
    /// Finds the parts of [start, end) not yet covered, in order; read them with
    /// <see cref="GapStart"/> and <see cref="GapEnd"/>. Returns how many there are.
    /// </summary>
    public int FindGaps(long start, long end)
    {
        _gapCount = 0;
        long cursor = start;
        for (int i = FirstEndingAfter(start); i < _count && _starts[i] < end && cursor < end; i++)
        {
            if (_starts[i] > cursor)
            {
                AddGap(cursor, _starts[i]);
            }
            cursor = Math.Max(cursor, _ends[i]);
        }
        if (cursor < end)
        {
            AddGap(cursor, end);
        }
        return _gapCount;
    }

    public long GapStart(int index) => _gapStarts[index];

    public long GapEnd(int index) => _gapEnds[index];

    private void AddGap(long start, long end)
    {
        if (_gapCount == _gapStarts.Length)
        {
            Array.Resize(ref _gapStarts, _gapCount * 2);
            Array.Resize(ref _gapEnds, _gapCount * 2);
        }
        _gapStarts[_gapCount] = start;
        _gapEnds[_gapCount] = end;
        _gapCount++;
    }

    /// <summary>Adds [start, end), merging every range it overlaps or touches.</summary>
    public void Add(long start, long end)
    {
        // First range with end >= start (touching counts), last range with start <= end.
        int lo = 0;
        while (lo < _count && _ends[lo] < start)
        {
            lo++;
        }
        int hi = lo;
        while (hi < _count && _starts[hi] <= end)
        {
            start = Math.Min(start, _starts[hi]);
            end = Math.Max(end, _ends[hi]);
            hi++;
        }
        int removed = hi - lo;
        if (removed == 0)
        {
            if (_count == _starts.Length)
            {
                Array.Resize(ref _starts, _count * 2);
                Array.Resize(ref _ends, _count * 2);
            }
            Array.Copy(_starts, lo, _starts, lo + 1, _count - lo);
            Array.Copy(_ends, lo, _ends, lo + 1, _count - lo);
            _count++;
        }
        else if (removed > 1)
        {
            Array.Copy(_starts, hi, _starts, lo + 1, _count - hi);
            Array.Copy(_ends, hi, _ends, lo + 1, _count - hi);
            _count -= removed - 1;
        }
        _starts[lo] = start;
        _ends[lo] = end;
    }

    private int FirstEndingAfter(long position)
    {
        int lo = 0, hi = _count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_ends[mid] <= position)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }
        return lo;
    }
}
