using System.Globalization;
using System.Runtime.InteropServices;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Persistence;

namespace DirectPmem.Testing;

/// <summary>
/// A simulated persistent-memory device: an ordinary <see cref="DaxMapping"/> of shared anonymous
/// memory (granularity <see cref="PersistGranularity.CacheLine"/>, operations supplied by this package)
/// whose stores land in volatile memory, and a simulated media that holds only what was made
/// durable: a 64-byte line reaches the media when it has been flushed and a drain has followed.
/// </summary>
/// <remarks>
/// <para>
/// A flush snapshots the current contents of the lines it covers (CLWB writes back what the line
/// holds at that moment); a drain commits every snapshot taken since the previous drain. A store
/// after the flush but before the drain re-dirties the line. Stores are not observed (they go
/// straight to memory through spans), so dirty state is found by comparing the volatile view with
/// the media word by word; consequently only the last value stored to a word before a crash is
/// known, not intermediate values a cache could have evicted earlier.
/// </para>
/// <para>
/// Code under test uses <see cref="Mapping"/> exactly as it would use a mapping of real pmem. It
/// must not dispose it: the device owns it, and the device needs the volatile view to compute
/// crash images and the never-flushed warning. Dispose the device instead.
/// </para>
/// </remarks>
public sealed class SimulatedDevice : IDisposable
{
    /// <summary>The unit of flushing: an x86 cache line.</summary>
    public const int CacheLineSize = 64;

    /// <summary>The unit of power-fail atomicity: an aligned 8-byte store.</summary>
    public const int WordSize = 8;

    /// <summary>The largest device the simulator accepts (the media is held in a managed array).</summary>
    public const long MaxLength = 1L << 30;

    private const int MaxWarningExamples = 16;

    private readonly Lock _gate = new();
    private readonly DaxMapping _mapping;
    private readonly byte[] _media;
    // Lines flushed since the last drain: line index -> slot in _pendingData (64 bytes each).
    private readonly Dictionary<long, int> _pending = [];
    private byte[] _pendingData = new byte[16 * CacheLineSize];
    private readonly List<SimulatorWarning> _warnings = [];
    private long _redundantFlushes;
    private long _neverFlushedLines;
    private long _flushedNeverDrainedLines;
    private long _emptyDrains;
    private long _drains;
    private long _flushes;
    private long _crashAtDrain;
    private CrashState? _capturedCrash;
    private bool _disposed;

    private SimulatedDevice(long length, PageSize pageSize)
    {
        if (length <= 0 || length > MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length,
                string.Create(CultureInfo.InvariantCulture, $"A simulated device is 1 byte to {MaxLength} bytes (a multiple of the page size)."));
        }
        _media = new byte[length];
        _mapping = MappingFactory.Map(new SimulatedSource(this, pageSize), new DaxMappingOptions { Length = length });
    }

    /// <summary>Creates a device of <paramref name="length"/> zeroed bytes; volatile view and media start equal.</summary>
    /// <param name="length">The number of bytes: a multiple of <paramref name="pageSize"/>, at most <see cref="MaxLength"/>.</param>
    /// <param name="pageSize">The device's page size; 4 KiB unless huge-page alignment matters to the code under test.</param>
    /// <returns>The device; dispose it when done.</returns>
    /// <exception cref="ArgumentException">The length is not a positive multiple of the page size or exceeds <see cref="MaxLength"/>.</exception>
    public static SimulatedDevice Create(long length, PageSize pageSize = PageSize.Pte) => new(length, pageSize);

    /// <summary>Creates a device whose media and volatile view both hold <paramref name="image"/> (a crash image, or any saved contents).</summary>
    /// <param name="image">The contents; its length must be a multiple of <paramref name="pageSize"/>.</param>
    /// <param name="pageSize">The device's page size.</param>
    /// <returns>The device; dispose it when done.</returns>
    /// <exception cref="ArgumentException">The image length is not a positive multiple of the page size.</exception>
    public static SimulatedDevice FromImage(ReadOnlySpan<byte> image, PageSize pageSize = PageSize.Pte)
    {
        var device = new SimulatedDevice(image.Length, pageSize);
        device.Load(image);
        return device;
    }

    /// <summary>The mapping code under test uses; owned by the device (do not dispose it).</summary>
    public DaxMapping Mapping => _mapping;

    /// <summary>The device length in bytes.</summary>
    public long Length => _media.LongLength;

    /// <summary>The number of drains (fences, including the one in every persist) since creation or <see cref="ResetCounters"/>.</summary>
    public long DrainCount
    {
        get { lock (_gate) { return _drains; } }
    }

    /// <summary>The number of flush calls (including the one in every persist) since creation or <see cref="ResetCounters"/>.</summary>
    public long FlushCount
    {
        get { lock (_gate) { return _flushes; } }
    }

    /// <summary>
    /// Arms a crash point: when drain number <c>N</c> (1-based, counted from creation or
    /// <see cref="ResetCounters"/>) is issued, the state just before it completes is captured in
    /// <see cref="CapturedCrash"/>; the run then continues normally. 0 disarms.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is negative.</exception>
    public long CrashAtDrain
    {
        get { lock (_gate) { return _crashAtDrain; } }
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            lock (_gate)
            {
                _crashAtDrain = value;
                _capturedCrash = null;
            }
        }
    }

    /// <summary>The state captured at the drain <see cref="CrashAtDrain"/> named, or <see langword="null"/> if it has not been reached.</summary>
    public CrashState? CapturedCrash
    {
        get { lock (_gate) { return _capturedCrash; } }
    }

    /// <summary>The media: what a crash with nothing in flight surviving would leave. A copy.</summary>
    public byte[] GetMediaCopy()
    {
        lock (_gate)
        {
            return (byte[])_media.Clone();
        }
    }

    /// <summary>Captures the state a power failure at this instant would leave: the media and every word in flight.</summary>
    /// <returns>The crash state, from which images are made.</returns>
    /// <exception cref="ObjectDisposedException">The device or its mapping has been disposed.</exception>
    public CrashState Crash()
    {
        lock (_gate)
        {
            return CaptureLocked(_drains, beforeDrain: false);
        }
    }

    /// <summary>The misuse warnings so far (redundant flushes, empty drains, and the unflushed stores found by <see cref="CheckUnflushedStores"/> or dispose).</summary>
    public SimulatorDiagnostics GetDiagnostics()
    {
        lock (_gate)
        {
            return new SimulatorDiagnostics(_neverFlushedLines, _flushedNeverDrainedLines, _redundantFlushes, _emptyDrains, _drains, _flushes, [.. _warnings]);
        }
    }

    /// <summary>
    /// Records a warning for every line whose stores were never flushed, or were flushed but never
    /// drained, as the device is now (dispose does this too, while it can still see the mapping).
    /// </summary>
    /// <returns>The number of lines found.</returns>
    /// <exception cref="ObjectDisposedException">The device or its mapping has been disposed.</exception>
    public int CheckUnflushedStores()
    {
        lock (_gate)
        {
            ThrowIfUnusable();
            return CheckUnflushedLocked();
        }
    }

    /// <summary>Zeroes the drain and flush counters and disarms <see cref="CrashAtDrain"/>, e.g. after the setup of a test.</summary>
    public void ResetCounters()
    {
        lock (_gate)
        {
            _drains = 0;
            _flushes = 0;
            _crashAtDrain = 0;
            _capturedCrash = null;
        }
    }

    /// <summary>Disposes the mapping after recording the never-flushed warning; idempotent.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            if (!_mapping.IsDisposed)
            {
                CheckUnflushedLocked();
            }
            else
            {
                AddWarning(new SimulatorWarning(SimulatorWarningKind.MappingDisposedByCaller, -1,
                    "the device's mapping was disposed before the device, so the never-flushed check could not run"));
            }
        }
        _mapping.Dispose();
    }

    /// <summary>Replaces volatile view and media with <paramref name="image"/>, clears pending flushes, counters and warnings.</summary>
    internal void Load(ReadOnlySpan<byte> image)
    {
        lock (_gate)
        {
            ThrowIfUnusable();
            if (image.Length != _media.Length)
            {
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                    $"The image has {image.Length} bytes; the device has {_media.Length}."), nameof(image));
            }
            image.CopyTo(_media);
            image.CopyTo(_mapping.GetSpan(0, _media.Length));
            _pending.Clear();
            _warnings.Clear();
            _redundantFlushes = 0;
            _neverFlushedLines = 0;
            _flushedNeverDrainedLines = 0;
            _emptyDrains = 0;
            _drains = 0;
            _flushes = 0;
            _crashAtDrain = 0;
            _capturedCrash = null;
        }
    }

    internal void OnFlush(long offset, long length)
    {
        lock (_gate)
        {
            ThrowIfUnusable();
            _flushes++;
            if (length <= 0)
            {
                return;
            }
            long first = offset / CacheLineSize;
            long last = Math.Min(offset + length - 1, _media.LongLength - 1) / CacheLineSize;
            ReadOnlySpan<byte> live = _mapping.GetReadOnlySpan(0, _media.Length);
            for (long line = first; line <= last; line++)
            {
                int start = checked((int)(line * CacheLineSize));
                ReadOnlySpan<byte> current = live.Slice(start, CacheLineSize);
                if (_pending.TryGetValue(line, out int slot))
                {
                    Span<byte> snapshot = _pendingData.AsSpan(slot * CacheLineSize, CacheLineSize);
                    if (current.SequenceEqual(snapshot))
                    {
                        RedundantFlush(start, "already flushed and unchanged since");
                    }
                    current.CopyTo(snapshot);
                }
                else
                {
                    if (current.SequenceEqual(_media.AsSpan(start, CacheLineSize)))
                    {
                        RedundantFlush(start, "clean: identical to the media");
                    }
                    slot = _pending.Count;
                    if ((slot + 1) * CacheLineSize > _pendingData.Length)
                    {
                        Array.Resize(ref _pendingData, _pendingData.Length * 2);
                    }
                    current.CopyTo(_pendingData.AsSpan(slot * CacheLineSize, CacheLineSize));
                    _pending.Add(line, slot);
                }
            }
        }
    }

    internal void OnDrain()
    {
        lock (_gate)
        {
            ThrowIfUnusable();
            _drains++;
            if (_crashAtDrain == _drains)
            {
                _capturedCrash = CaptureLocked(_drains, beforeDrain: true);
            }
            if (_pending.Count == 0)
            {
                _emptyDrains++;
                if (_emptyDrains <= MaxWarningExamples)
                {
                    AddWarning(new SimulatorWarning(SimulatorWarningKind.EmptyDrain, -1,
                        string.Create(CultureInfo.InvariantCulture, $"drain {_drains} had no flush pending since the previous drain")));
                }
                return;
            }
            foreach ((long line, int slot) in _pending)
            {
                _pendingData.AsSpan(slot * CacheLineSize, CacheLineSize).CopyTo(_media.AsSpan(checked((int)(line * CacheLineSize))));
            }
            _pending.Clear();
        }
    }

    private void RedundantFlush(long offset, string why)
    {
        _redundantFlushes++;
        if (_redundantFlushes <= MaxWarningExamples)
        {
            AddWarning(new SimulatorWarning(SimulatorWarningKind.RedundantFlush, offset,
                string.Create(CultureInfo.InvariantCulture, $"flush {_flushes} of line 0x{offset:x}, which is {why}")));
        }
    }

    private int CheckUnflushedLocked()
    {
        // Each check reports the lines as they are now, replacing the previous check's findings.
        _warnings.RemoveAll(w => w.Kind is SimulatorWarningKind.NeverFlushed or SimulatorWarningKind.FlushedNeverDrained);
        _neverFlushedLines = 0;
        _flushedNeverDrainedLines = 0;
        ReadOnlySpan<byte> live = _mapping.GetReadOnlySpan(0, _media.Length);
        for (int start = 0; start < _media.Length; start += CacheLineSize)
        {
            ReadOnlySpan<byte> current = live.Slice(start, CacheLineSize);
            long line = start / CacheLineSize;
            bool pending = _pending.TryGetValue(line, out int slot);
            if (pending && current.SequenceEqual(_pendingData.AsSpan(slot * CacheLineSize, CacheLineSize)))
            {
                if (!current.SequenceEqual(_media.AsSpan(start, CacheLineSize)) && ++_flushedNeverDrainedLines <= MaxWarningExamples)
                {
                    AddWarning(new SimulatorWarning(SimulatorWarningKind.FlushedNeverDrained, start,
                        string.Create(CultureInfo.InvariantCulture, $"line 0x{start:x} was flushed but no drain followed")));
                }
            }
            else if (!current.SequenceEqual(_media.AsSpan(start, CacheLineSize)) && ++_neverFlushedLines <= MaxWarningExamples)
            {
                AddWarning(new SimulatorWarning(SimulatorWarningKind.NeverFlushed, start,
                    string.Create(CultureInfo.InvariantCulture, $"line 0x{start:x} holds stores that were never flushed")));
            }
        }
        return checked((int)(_neverFlushedLines + _flushedNeverDrainedLines));
    }

    private CrashState CaptureLocked(long drain, bool beforeDrain)
    {
        ThrowIfUnusable();
        ReadOnlySpan<byte> live = _mapping.GetReadOnlySpan(0, _media.Length);
        ReadOnlySpan<ulong> liveWords = MemoryMarshal.Cast<byte, ulong>(live);
        ReadOnlySpan<ulong> mediaWords = MemoryMarshal.Cast<byte, ulong>(_media.AsSpan());
        var inFlight = new List<InFlightWord>();
        const int wordsPerLine = CacheLineSize / WordSize;
        for (int word = 0; word < mediaWords.Length; word++)
        {
            ulong old = mediaWords[word];
            ulong current = liveWords[word];
            bool flushed = false;
            ulong snapshot = 0;
            if (_pending.Count != 0 && _pending.TryGetValue(word / wordsPerLine, out int slot))
            {
                flushed = true;
                snapshot = MemoryMarshal.Cast<byte, ulong>(_pendingData.AsSpan(slot * CacheLineSize, CacheLineSize))[word % wordsPerLine];
            }
            if (old != current || (flushed && snapshot != old))
            {
                inFlight.Add(new InFlightWord((long)word * WordSize, old, flushed ? snapshot : null, current));
            }
        }
        return new CrashState(drain, beforeDrain, (byte[])_media.Clone(), [.. inFlight]);
    }

    private void AddWarning(SimulatorWarning warning) => _warnings.Add(warning);

    private void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposed || _mapping.IsDisposed, this);
    }
}
