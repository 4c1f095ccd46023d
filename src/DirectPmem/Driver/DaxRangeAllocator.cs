using System.Globalization;
using DirectPmem.Geometry;
using DirectPmem.Mapping;

namespace DirectPmem.Driver;

/// <summary>
/// Carves a device (real or emulated) into named, exclusive, aligned child ranges, each with its
/// own page size, recorded in a checksummed label area at the start of the device (like ndctl
/// namespace labels) so that they survive a restart. The table is validated on every open: no
/// overlap, in bounds, aligned, checksums, unique names.
/// </summary>
/// <remarks>
/// <para>
/// The label area is the first <see cref="LabelAreaLength"/> bytes of the device (two 4 KiB
/// slots, rounded up to the device alignment); allocations come from the rest, and
/// <see cref="DaxDevice.Map"/> of a device that holds a table keeps out of the label area.
/// Updates are failure-atomic: the slot that is not the current table is unpublished
/// (<see cref="DaxMapping.Publish"/> of 0), its body rewritten and persisted, then published
/// with the next sequence number (<see cref="DaxMapping.Publish"/>), so a crash leaves the old
/// table or the new one, never a mix. The protocol is swept by the project's crash test on a
/// simulated device at every drain point.
/// </para>
/// <para>
/// Instances are thread-safe. A device's labels are owned by one writable allocator or by any
/// number of read-only ones (<see cref="OpenReadOnly"/>), in this process and others together:
/// an open that breaks that rule is refused with <see cref="PmemInUseException"/>. Within the
/// process the rule is kept per <see cref="DaxDevice"/> instance; across instances and processes
/// by the emulated device's file lock (exclusive when it was opened writable), or by flock on the
/// real device's node, which each allocator opens for itself: flock belongs to the open file
/// description, so LOCK_SH (read-only) holders coexist and LOCK_EX (writable) excludes every other
/// open, even one in the same process. <see cref="Free"/> refuses a range that a mapping made by
/// <see cref="Map"/> still covers: dispose those mappings first. Mappings made otherwise
/// (<see cref="DaxDevice.Map"/>, another process) are not tracked.
/// </para>
/// <para>
/// The allocator belongs to its <see cref="Device"/>: once the device is disposed, every method
/// and <see cref="Ranges"/> throw <see cref="ObjectDisposedException"/> naming the device (its file
/// lock, which kept other writers out, is gone). Mappings already made by <see cref="Map"/> stay
/// valid until they are disposed themselves, as mappings made by <see cref="DaxDevice.Map"/> do.
/// </para>
/// </remarks>
public sealed class DaxRangeAllocator : IDisposable
{
    /// <summary>The most ranges one device can hold.</summary>
    public const int MaxRanges = LabelSlot.MaxEntries;

    private readonly DaxDevice? _device;
    private readonly long _deviceSize;
    private readonly PageSize _align;
    private readonly string _path;
    private readonly DaxMapping _labels;
    private readonly bool _ownsLabels;
    private readonly LabelLock? _lock;
    private readonly Lock _gate = new();
    // Mappings made by Map, per range name: Free refuses a range while one is alive.
    private readonly Dictionary<string, List<WeakReference<DaxMapping>>> _mapped = new(StringComparer.Ordinal);
    private List<DaxAllocation> _entries = [];
    private int _activeSlot = 1;
    private ulong _sequence;
    private bool _disposed;

    private DaxRangeAllocator(DaxDevice? device, long deviceSize, PageSize align, string path, DaxMapping labels, bool ownsLabels,
        LabelLock? labelLock, bool readOnly)
    {
        _device = device;
        _deviceSize = deviceSize;
        _align = align;
        _path = path;
        _labels = labels;
        _ownsLabels = ownsLabels;
        _lock = labelLock;
        IsReadOnly = readOnly;
    }

    /// <summary>The device the ranges are carved from.</summary>
    /// <exception cref="InvalidOperationException">The allocator works on a bare label medium (tests), not a device.</exception>
    public DaxDevice Device => _device ?? throw new InvalidOperationException($"the allocator of '{_path}' works on a label medium without a device.");

    /// <summary>Whether the allocator was opened with <see cref="OpenReadOnly"/>: it lists and maps ranges but cannot change them.</summary>
    public bool IsReadOnly { get; }

    /// <summary>The number of bytes at the start of the device that hold the labels.</summary>
    public long LabelAreaLength => LabelSlot.AreaLength(_align);

    /// <summary>
    /// The sequence number of the current table: 1 after <see cref="Format"/>, one more per update,
    /// wrapping from 2^64-2 back to 1 (2^64-1 is never used: its publish word would read as unpublished).
    /// </summary>
    public ulong Sequence
    {
        get
        {
            lock (_gate)
            {
                return _sequence;
            }
        }
    }

    /// <summary>The label slot (0 or 1) that holds the current table.</summary>
    public int ActiveSlot
    {
        get
        {
            lock (_gate)
            {
                return _activeSlot;
            }
        }
    }

    /// <summary>The ranges, ordered by offset.</summary>
    /// <exception cref="ObjectDisposedException">The device was disposed.</exception>
    public IReadOnlyList<DaxAllocation> Ranges
    {
        get
        {
            lock (_gate)
            {
                ThrowIfDeviceDisposed();
                return _entries.ToArray();
            }
        }
    }

    /// <summary>
    /// The longest range <see cref="Allocate"/> can still give at the device alignment: the largest
    /// aligned gap between the label area, the ranges and the device end; 0 when the table holds
    /// <see cref="MaxRanges"/> ranges. Free space split between gaps is not one range: this is what a
    /// request for "at least N bytes" must be weighed against.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The device was disposed.</exception>
    public long LargestFreeLength
    {
        get
        {
            lock (_gate)
            {
                ThrowIfDeviceDisposed();
                if (_entries.Count >= MaxRanges)
                {
                    return 0;
                }
                long largest = 0;
                foreach ((long start, long end) in Gaps(_align))
                {
                    largest = Math.Max(largest, end - start);
                }
                return largest;
            }
        }
    }

    /// <summary>The label area length a device of <paramref name="align"/> reserves.</summary>
    /// <param name="align">The device alignment.</param>
    /// <returns>Two 4 KiB slots rounded up to <paramref name="align"/>.</returns>
    /// <exception cref="ArgumentException"><paramref name="align"/> is not a page size.</exception>
    public static long LabelAreaLengthFor(PageSize align)
    {
        PageSizes.Validate(align, nameof(align));
        return LabelSlot.AreaLength(align);
    }

    /// <summary>Writes an empty table to a device whose label area holds no published table.</summary>
    /// <param name="device">The device, writable; at least one alignment unit larger than the label area.</param>
    /// <returns>The allocator, with no ranges.</returns>
    /// <exception cref="DaxLabelException">The device already holds a table (<see cref="DaxLabelRule.AlreadyFormatted"/>), or has no room after the label area (<see cref="DaxLabelRule.OutOfBounds"/>).</exception>
    /// <exception cref="ArgumentException">The device was opened read-only.</exception>
    /// <exception cref="PmemInUseException">Another allocator (writable or read-only) owns the device's labels.</exception>
    /// <exception cref="ObjectDisposedException">The device was disposed.</exception>
    public static DaxRangeAllocator Format(DaxDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        CheckRoom(device.Size, device.Align, device.DevicePath);
        CheckWritable(device);
        return WithDevice(device, shared: false, allocator => allocator.FormatCore());
    }

    /// <summary>Opens the table of a formatted device and validates both slots.</summary>
    /// <param name="device">The device, writable.</param>
    /// <returns>The allocator, with the ranges of the newer published slot.</returns>
    /// <exception cref="DaxLabelException">No table (<see cref="DaxLabelRule.NotFormatted"/>), or a published slot breaks a rule (the exception names the slot).</exception>
    /// <exception cref="ArgumentException">The device was opened read-only: use <see cref="OpenReadOnly"/>.</exception>
    /// <exception cref="PmemInUseException">Another allocator (writable or read-only) owns the device's labels.</exception>
    /// <exception cref="ObjectDisposedException">The device was disposed.</exception>
    public static DaxRangeAllocator Open(DaxDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        CheckRoom(device.Size, device.Align, device.DevicePath);
        CheckWritable(device);
        return WithDevice(device, shared: false, allocator => allocator.Load());
    }

    /// <summary>
    /// Opens the table of a formatted device for reading only: <see cref="Ranges"/>, <see cref="Get"/>
    /// and <see cref="Map"/> work (map with <see cref="DaxMappingOptions.ReadOnly"/> on a read-only
    /// device); <see cref="Allocate"/>, <see cref="AllocateAt"/> and <see cref="Free"/> are refused.
    /// Works on a device opened read-only (<c>DaxDevice.OpenEmulated(path, writable: false)</c>, or a
    /// device node this user may only read).
    /// </summary>
    /// <param name="device">The device.</param>
    /// <returns>The allocator.</returns>
    /// <exception cref="DaxLabelException">No table (<see cref="DaxLabelRule.NotFormatted"/>), or a published slot breaks a rule.</exception>
    /// <exception cref="PmemInUseException">A writable allocator owns the device's labels (other read-only allocators are fine, in this process or another).</exception>
    /// <exception cref="ObjectDisposedException">The device was disposed.</exception>
    public static DaxRangeAllocator OpenReadOnly(DaxDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        CheckRoom(device.Size, device.Align, device.DevicePath);
        return WithDevice(device, shared: true, allocator => allocator.Load());
    }

    /// <summary>An allocator over a bare label medium (the first 8 KiB of <paramref name="labels"/>), for crash tests on a simulated device.</summary>
    internal static DaxRangeAllocator FormatMedium(DaxMapping labels, long deviceSize, PageSize align, string path)
    {
        DaxRangeAllocator allocator = OnMedium(labels, deviceSize, align, path, readOnly: false);
        allocator.FormatCore();
        return allocator;
    }

    /// <summary>Opens the table on a bare label medium; the mapping stays the caller's.</summary>
    internal static DaxRangeAllocator OpenMedium(DaxMapping labels, long deviceSize, PageSize align, string path, bool readOnly = false)
    {
        DaxRangeAllocator allocator = OnMedium(labels, deviceSize, align, path, readOnly);
        allocator.Load();
        return allocator;
    }

    private static DaxRangeAllocator OnMedium(DaxMapping labels, long deviceSize, PageSize align, string path, bool readOnly)
    {
        ArgumentNullException.ThrowIfNull(labels);
        PageSizes.Validate(align, nameof(align));
        CheckRoom(deviceSize, align, path);
        if (labels.Length < 2 * LabelSlot.Size)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"a label medium holds two {LabelSlot.Size}-byte slots; this one is {labels.Length} bytes."), nameof(labels));
        }
        return new DaxRangeAllocator(null, deviceSize, align, path, labels, ownsLabels: false, labelLock: null, readOnly);
    }

    private static void CheckRoom(long deviceSize, PageSize align, string path)
    {
        long area = LabelSlot.AreaLength(align);
        if (deviceSize <= area)
        {
            throw new DaxLabelException(-1, DaxLabelRule.OutOfBounds, string.Create(CultureInfo.InvariantCulture,
                $"a {deviceSize}-byte device has no room after its {area}-byte label area."), path);
        }
    }

    private static void CheckWritable(DaxDevice device)
    {
        if (!device.IsWritable)
        {
            throw new ArgumentException(
                $"'{device.DevicePath}' was opened read-only, so its labels cannot be written: open the allocator with DaxRangeAllocator.OpenReadOnly " +
                "to list and map the ranges, or reopen the device writable (DaxDevice.OpenEmulated(path, writable: true)) to change them.",
                nameof(device));
        }
    }

    private static DaxRangeAllocator WithDevice(DaxDevice device, bool shared, Action<DaxRangeAllocator> start)
    {
        device.ThrowIfDisposed();
        LabelLock labelLock = LabelLock.Acquire(device, shared);
        DaxMapping? labels = null;
        try
        {
            try
            {
                labels = device.MapRange(0, device.Size, device.Align,
                    new DaxMappingOptions { Length = LabelSlot.AreaLength(device.Align), ReadOnly = shared },
                    "the label area of '" + device.DevicePath + "'");
            }
            catch (PmemAccessDeniedException e) when (!shared)
            {
                throw new PmemAccessDeniedException(
                    $"the label area of '{device.DevicePath}' cannot be mapped for writing ({e.ErrnoName}): open the allocator with " +
                    "DaxRangeAllocator.OpenReadOnly to list and map the ranges, or get write access to the device to change them.",
                    e.Call, e.Errno, device.DevicePath);
            }
            var allocator = new DaxRangeAllocator(device, device.Size, device.Align, device.DevicePath, labels, ownsLabels: true, labelLock, shared);
            start(allocator);
            return allocator;
        }
        catch
        {
            labels?.Dispose();
            labelLock.Dispose();
            throw;
        }
    }

    private void FormatCore()
    {
        lock (_gate)
        {
            if (LabelSlot.IsPublished(_labels.GetReadOnlySpan(0, LabelSlot.Size)) || LabelSlot.IsPublished(_labels.GetReadOnlySpan(LabelSlot.Size, LabelSlot.Size)))
            {
                throw new DaxLabelException(-1, DaxLabelRule.AlreadyFormatted,
                    "the device already holds a label table; open it with DaxRangeAllocator.Open (formatting again would lose the ranges).", _path);
            }
            _activeSlot = 1;
            _sequence = 0;
            Commit([]);
        }
    }

    private void Load()
    {
        lock (_gate)
        {
            (List<DaxAllocation> Entries, ulong Sequence)?[] slots = new (List<DaxAllocation>, ulong)?[2];
            for (int i = 0; i < 2; i++)
            {
                ReadOnlySpan<byte> slot = _labels.GetReadOnlySpan(i * LabelSlot.Size, LabelSlot.Size);
                if (LabelSlot.IsPublished(slot))
                {
                    (ulong sequence, List<DaxAllocation> entries) = LabelSlot.Decode(slot, i, _deviceSize, _align, _path);
                    slots[i] = (entries, sequence);
                }
            }
            int active;
            if (slots[0] is { } a && slots[1] is { } b)
            {
                if (LabelSlot.IsNewer(a.Sequence, b.Sequence))
                {
                    active = 0;
                }
                else if (LabelSlot.IsNewer(b.Sequence, a.Sequence))
                {
                    active = 1;
                }
                else
                {
                    throw new DaxLabelException(1, DaxLabelRule.SequenceConflict, string.Create(CultureInfo.InvariantCulture,
                        $"slot 0 holds sequence {a.Sequence} and slot 1 sequence {b.Sequence}: neither is newer."), _path);
                }
            }
            else if (slots[0] is not null)
            {
                active = 0;
            }
            else if (slots[1] is not null)
            {
                active = 1;
            }
            else
            {
                throw new DaxLabelException(-1, DaxLabelRule.NotFormatted,
                    "the label area holds no published table; create one with DaxRangeAllocator.Format.", _path);
            }
            (List<DaxAllocation> chosen, ulong chosenSequence) = slots[active]!.Value;
            _entries = chosen;
            _activeSlot = active;
            _sequence = chosenSequence;
        }
    }

    /// <summary>The range named <paramref name="name"/>.</summary>
    /// <param name="name">The range's name.</param>
    /// <returns>The range.</returns>
    /// <exception cref="DaxLabelException">No range has that name (<see cref="DaxLabelRule.NoSuchRange"/>).</exception>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    /// <exception cref="ObjectDisposedException">The allocator or its device was disposed.</exception>
    public DaxAllocation Get(string name)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            ThrowIfDeviceDisposed();
            ArgumentNullException.ThrowIfNull(name);
            return FindOrThrow(name);
        }
    }

    /// <summary>Allocates <paramref name="length"/> bytes at the lowest free offset aligned to <paramref name="pageSize"/>.</summary>
    /// <param name="name">A unique name, 1 to 32 bytes of UTF-8.</param>
    /// <param name="length">The length; a positive multiple of the page size.</param>
    /// <param name="pageSize">The range's page size; a multiple of the device alignment (the alignment when null).</param>
    /// <returns>The new range, recorded durably before this returns.</returns>
    /// <exception cref="DaxLabelException">The name is bad or taken, the length misaligned, the page size too small, or no space or entry is free (<see cref="DaxLabelRule.Full"/>).</exception>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    /// <exception cref="InvalidOperationException">The allocator was opened read-only.</exception>
    /// <exception cref="ObjectDisposedException">The allocator or its device was disposed.</exception>
    public DaxAllocation Allocate(string name, long length, PageSize? pageSize = null)
    {
        lock (_gate)
        {
            PageSize page = pageSize ?? _align;
            CheckRequest(name, page);
            if (length <= 0 || !RangeValidator.IsAligned(length, page))
            {
                throw new DaxLabelException(-1, DaxLabelRule.Unaligned, string.Create(CultureInfo.InvariantCulture,
                    $"range '{name}': length {length} is not a positive multiple of its page size {page.ToDisplayString()}."), _path);
            }
            foreach ((long start, long end) in Gaps(page))
            {
                if (length <= end - start)
                {
                    return Add(new DaxAllocation(name, start, length, page));
                }
            }
            throw new DaxLabelException(-1, DaxLabelRule.Full, string.Create(CultureInfo.InvariantCulture,
                $"no free {page.ToDisplayString()}-aligned space of {length} bytes for '{name}' on '{_path}'."), _path);
        }
    }

    // The free gaps [start, end) between the label area, the ranges (ordered by offset) and the device
    // end, each start aligned up to page; empty gaps are left out. Called under _gate.
    private IEnumerable<(long Start, long End)> Gaps(PageSize page)
    {
        long cursor = LabelAreaLength;
        foreach (DaxAllocation? entry in _entries.Append(null))
        {
            long gapEnd = entry?.Offset ?? _deviceSize;
            long start = RangeValidator.AlignUp(cursor, (long)page);
            if (start < gapEnd)
            {
                yield return (start, gapEnd);
            }
            if (entry is not null)
            {
                cursor = entry.End;
            }
        }
    }

    /// <summary>Allocates the range <c>[offset, offset + length)</c>.</summary>
    /// <param name="name">A unique name, 1 to 32 bytes of UTF-8.</param>
    /// <param name="offset">The device offset; a multiple of the page size, at or after <see cref="LabelAreaLength"/>.</param>
    /// <param name="length">The length; a positive multiple of the page size.</param>
    /// <param name="pageSize">The range's page size; a multiple of the device alignment (the alignment when null).</param>
    /// <returns>The new range, recorded durably before this returns.</returns>
    /// <exception cref="DaxLabelException">The request is misaligned, out of bounds, overlaps a range, or the name is bad or taken.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    /// <exception cref="InvalidOperationException">The allocator was opened read-only.</exception>
    /// <exception cref="ObjectDisposedException">The allocator or its device was disposed.</exception>
    public DaxAllocation AllocateAt(string name, long offset, long length, PageSize? pageSize = null)
    {
        lock (_gate)
        {
            PageSize page = pageSize ?? _align;
            CheckRequest(name, page);
            DaxAllocation request = LabelSlot.ValidateEntry(name, offset, length, (long)page, _deviceSize, _align, -1, -1, _path);
            foreach (DaxAllocation entry in _entries)
            {
                if (entry.Offset < request.End && request.Offset < entry.End)
                {
                    throw new DaxLabelException(-1, DaxLabelRule.Overlap, $"{request} overlaps {entry}.", _path);
                }
            }
            return Add(request);
        }
    }

    /// <summary>
    /// Frees the range named <paramref name="name"/>; its bytes become free for new ranges (their
    /// contents are left as they are). A range that a mapping made by <see cref="Map"/> still covers
    /// is refused: a new range could otherwise be handed the same bytes while old stores still land there.
    /// </summary>
    /// <param name="name">The range's name.</param>
    /// <exception cref="DaxLabelException">No range has that name (<see cref="DaxLabelRule.NoSuchRange"/>), or a mapping of it is not disposed (<see cref="DaxLabelRule.RangeInUse"/>).</exception>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    /// <exception cref="InvalidOperationException">The allocator was opened read-only.</exception>
    /// <exception cref="ObjectDisposedException">The allocator or its device was disposed.</exception>
    public void Free(string name)
    {
        lock (_gate)
        {
            ThrowIfNotWritable();
            ArgumentNullException.ThrowIfNull(name);
            DaxAllocation entry = FindOrThrow(name);
            int live = CountLiveMappings(name);
            if (live > 0)
            {
                throw new DaxLabelException(-1, DaxLabelRule.RangeInUse, string.Create(CultureInfo.InvariantCulture,
                    $"range '{LabelSlot.Escape(name)}' {entry.Range} is still mapped by {live} mapping(s) made with DaxRangeAllocator.Map; dispose them before freeing it."), _path);
            }
            var next = new List<DaxAllocation>(_entries);
            next.Remove(entry);
            Commit(next);
            _mapped.Remove(name);
        }
    }

    /// <summary>
    /// Maps a range exactly like a device: offsets are relative to the range and, like the
    /// length, multiples of its page size (or of <see cref="DaxMappingOptions.PageSize"/>, which may not be smaller).
    /// </summary>
    /// <param name="name">The range's name.</param>
    /// <param name="options">The sub-range and flags; the whole range when null.</param>
    /// <returns>The mapping; <see cref="Free"/> of the range is refused until it is disposed.</returns>
    /// <exception cref="DaxLabelException">No range has that name.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    /// <exception cref="ArgumentException">The offset or length is misaligned, or the page size is smaller than the range's.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The sub-range ends past the range.</exception>
    /// <exception cref="ObjectDisposedException">The allocator or its device was disposed.</exception>
    public DaxMapping Map(string name, DaxMappingOptions? options = null)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            ThrowIfDeviceDisposed();
            ArgumentNullException.ThrowIfNull(name);
            DaxAllocation entry = FindOrThrow(name);
            DaxMapping mapping = Device.MapRange(entry.Offset, entry.Length, entry.PageSize, options ?? DaxMappingOptions.Default,
                $"range '{name}' of '{_path}'");
            if (!_mapped.TryGetValue(name, out List<WeakReference<DaxMapping>>? list))
            {
                _mapped[name] = list = [];
            }
            CountLiveMappings(name);
            list.Add(new WeakReference<DaxMapping>(mapping));
            return mapping;
        }
    }

    /// <summary>Unmaps the label area and gives up ownership of it. The device stays open; mappings of ranges stay valid.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
        }
        if (_ownsLabels)
        {
            _labels.Dispose();
        }
        _lock?.Dispose();
    }

    // Drops the collected and disposed mappings of a range and counts the rest. Caller holds _gate.
    private int CountLiveMappings(string name)
    {
        if (!_mapped.TryGetValue(name, out List<WeakReference<DaxMapping>>? list))
        {
            return 0;
        }
        list.RemoveAll(static weak => !weak.TryGetTarget(out DaxMapping? mapping) || mapping.IsDisposed);
        return list.Count;
    }

    private DaxAllocation FindOrThrow(string name)
    {
        foreach (DaxAllocation entry in _entries)
        {
            if (entry.Name == name)
            {
                return entry;
            }
        }
        throw new DaxLabelException(-1, DaxLabelRule.NoSuchRange, $"there is no range named '{LabelSlot.Escape(name)}'.", _path);
    }

    // The device owns the allocator: once it is disposed (an emulated device's file and its lock
    // are closed) nothing more is read from, written to or mapped on its behalf.
    private void ThrowIfDeviceDisposed() => _device?.ThrowIfDisposed();

    private void ThrowIfNotWritable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ThrowIfDeviceDisposed();
        if (IsReadOnly)
        {
            throw new InvalidOperationException($"the allocator of '{_path}' was opened read-only (DaxRangeAllocator.OpenReadOnly); open it with DaxRangeAllocator.Open to change ranges.");
        }
    }

    private void CheckRequest(string name, PageSize page)
    {
        ThrowIfNotWritable();
        ArgumentNullException.ThrowIfNull(name);
        LabelSlot.ValidateName(name, _path);
        if (!PageSizes.IsDefined(page) || page < _align)
        {
            throw new DaxLabelException(-1, DaxLabelRule.BadPageSize, string.Create(CultureInfo.InvariantCulture,
                $"range '{name}': page size {(long)page} is not a page size that is a multiple of the device alignment {_align.ToDisplayString()}."), _path);
        }
        foreach (DaxAllocation entry in _entries)
        {
            if (entry.Name == name)
            {
                throw new DaxLabelException(-1, DaxLabelRule.DuplicateName, $"a range named '{name}' already exists.", _path);
            }
        }
        if (_entries.Count >= MaxRanges)
        {
            throw new DaxLabelException(-1, DaxLabelRule.Full, string.Create(CultureInfo.InvariantCulture,
                $"the label table holds {MaxRanges} ranges, its maximum."), _path);
        }
    }

    private DaxAllocation Add(DaxAllocation entry)
    {
        var next = new List<DaxAllocation>(_entries) { entry };
        next.Sort((a, b) => a.Offset.CompareTo(b.Offset));
        Commit(next);
        return entry;
    }

    // Unpublish the other slot, write and persist its body, then publish it. Caller holds _gate.
    // Three drains: a crash before the last leaves that slot unpublished, so the table is the old one.
    private void Commit(List<DaxAllocation> next)
    {
        int target = 1 - _activeSlot;
        ulong sequence = LabelSlot.NextSequence(_sequence);
        long slotOffset = (long)target * LabelSlot.Size;
        Span<byte> image = stackalloc byte[LabelSlot.Size];
        LabelSlot.Encode(image, target, sequence, _deviceSize, _align, next);

        _labels.Publish(slotOffset, 0);
        image[sizeof(ulong)..].CopyTo(_labels.GetSpan(slotOffset + sizeof(ulong), LabelSlot.Size - sizeof(ulong)));
        _labels.Persist(slotOffset + sizeof(ulong), LabelSlot.Size - sizeof(ulong));
        _labels.Publish(slotOffset, ~sequence);

        _entries = next;
        _activeSlot = target;
        _sequence = sequence;
    }
}
