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
/// The label area is the first <see cref="LabelAreaLength"/> bytes of the device (two 4 KiB
/// slots, rounded up to the device alignment); allocations come from the rest. Updates are
/// failure-atomic: the slot that is not the current table is unpublished, rewritten and
/// persisted, then published with the next sequence number and persisted, so a crash leaves the
/// old table or the new one, never a mix. The label area is written through
/// <see cref="DaxMapping.Persist"/> (msync on an emulated device on an ordinary file, cache
/// flush and fence on device-DAX). Instances are thread-safe, and one allocator at a time owns a
/// device's labels: a second open on the same <see cref="DaxDevice"/> is refused, other processes
/// are kept out by the emulated device's file lock or by flock on the real device's node.
/// </remarks>
public sealed class DaxRangeAllocator : IDisposable
{
    /// <summary>The most ranges one device can hold.</summary>
    public const int MaxRanges = LabelSlot.MaxEntries;

    private readonly DaxDevice _device;
    private readonly DaxMapping _labels;
    private readonly IDisposable _ownership;
    private readonly Lock _gate = new();
    private List<DaxAllocation> _entries;
    private int _activeSlot;
    private ulong _sequence;

    private DaxRangeAllocator(DaxDevice device, DaxMapping labels, IDisposable ownership, List<DaxAllocation> entries, int activeSlot, ulong sequence)
    {
        _device = device;
        _labels = labels;
        _ownership = ownership;
        _entries = entries;
        _activeSlot = activeSlot;
        _sequence = sequence;
    }

    /// <summary>The device the ranges are carved from.</summary>
    public DaxDevice Device => _device;

    /// <summary>The number of bytes at the start of the device that hold the labels.</summary>
    public long LabelAreaLength => LabelSlot.AreaLength(_device.Align);

    /// <summary>The sequence number of the current table (1 after <see cref="Format"/>, one more per update).</summary>
    public long Sequence
    {
        get
        {
            lock (_gate)
            {
                return (long)_sequence;
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
    public IReadOnlyList<DaxAllocation> Ranges
    {
        get
        {
            lock (_gate)
            {
                return _entries.ToArray();
            }
        }
    }

    /// <summary>The label area length a device of <paramref name="align"/> reserves.</summary>
    /// <param name="align">The device alignment.</param>
    public static long LabelAreaLengthFor(PageSize align) => LabelSlot.AreaLength(align);

    /// <summary>Writes an empty table to a device whose label area holds no published table.</summary>
    /// <param name="device">The device; at least one alignment unit larger than the label area.</param>
    /// <returns>The allocator, with no ranges.</returns>
    /// <exception cref="DaxLabelException">The device already holds a table (<see cref="DaxLabelRule.AlreadyFormatted"/>), or has no room after the label area (<see cref="DaxLabelRule.OutOfBounds"/>).</exception>
    /// <exception cref="PmemInUseException">Another allocator owns the device's labels.</exception>
    public static DaxRangeAllocator Format(DaxDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        long area = LabelSlot.AreaLength(device.Align);
        if (device.Size <= area)
        {
            throw new DaxLabelException(-1, DaxLabelRule.OutOfBounds, string.Create(CultureInfo.InvariantCulture,
                $"a {device.Size}-byte device has no room after its {area}-byte label area."), device.DevicePath);
        }
        IDisposable ownership = device.AcquireLabels();
        DaxMapping? labels = null;
        try
        {
            labels = MapLabels(device);
            if (LabelSlot.IsPublished(labels.GetReadOnlySpan(0, LabelSlot.Size)) || LabelSlot.IsPublished(labels.GetReadOnlySpan(LabelSlot.Size, LabelSlot.Size)))
            {
                throw new DaxLabelException(-1, DaxLabelRule.AlreadyFormatted,
                    "the device already holds a label table; open it with DaxRangeAllocator.Open (formatting again would lose the ranges).", device.DevicePath);
            }
            var allocator = new DaxRangeAllocator(device, labels, ownership, [], activeSlot: 1, sequence: 0);
            allocator.Commit([], tearAfterBytes: -1);
            return allocator;
        }
        catch
        {
            labels?.Dispose();
            ownership.Dispose();
            throw;
        }
    }

    /// <summary>Opens the table of a formatted device and validates both slots.</summary>
    /// <param name="device">The device.</param>
    /// <returns>The allocator, with the ranges of the newest published slot.</returns>
    /// <exception cref="DaxLabelException">No table (<see cref="DaxLabelRule.NotFormatted"/>), or a published slot breaks a rule (the exception names the slot).</exception>
    /// <exception cref="PmemInUseException">Another allocator owns the device's labels.</exception>
    public static DaxRangeAllocator Open(DaxDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        IDisposable ownership = device.AcquireLabels();
        DaxMapping? labels = null;
        try
        {
            labels = MapLabels(device);
            (List<DaxAllocation> Entries, ulong Sequence)?[] slots = new (List<DaxAllocation>, ulong)?[2];
            for (int i = 0; i < 2; i++)
            {
                ReadOnlySpan<byte> slot = labels.GetReadOnlySpan(i * LabelSlot.Size, LabelSlot.Size);
                if (LabelSlot.IsPublished(slot))
                {
                    (ulong sequence, List<DaxAllocation> entries) = LabelSlot.Decode(slot, i, device.Size, device.Align, device.DevicePath);
                    slots[i] = (entries, sequence);
                }
            }
            if (slots[0] is null && slots[1] is null)
            {
                throw new DaxLabelException(-1, DaxLabelRule.NotFormatted,
                    "the label area holds no published table; create one with DaxRangeAllocator.Format.", device.DevicePath);
            }
            if (slots[0] is { } a && slots[1] is { } b && a.Sequence == b.Sequence)
            {
                throw new DaxLabelException(1, DaxLabelRule.SequenceConflict,
                    string.Create(CultureInfo.InvariantCulture, $"both slots hold sequence {a.Sequence}."), device.DevicePath);
            }
            int active = slots[1] is null || (slots[0] is { } s0 && s0.Sequence > slots[1]!.Value.Sequence) ? 0 : 1;
            var chosen = slots[active]!.Value;
            return new DaxRangeAllocator(device, labels, ownership, chosen.Entries, active, chosen.Sequence);
        }
        catch
        {
            labels?.Dispose();
            ownership.Dispose();
            throw;
        }
    }

    /// <summary>The range named <paramref name="name"/>.</summary>
    /// <param name="name">The range's name.</param>
    /// <returns>The range.</returns>
    /// <exception cref="DaxLabelException">No range has that name (<see cref="DaxLabelRule.NoSuchRange"/>).</exception>
    public DaxAllocation Get(string name)
    {
        lock (_gate)
        {
            return Find(name) ?? throw new DaxLabelException(-1, DaxLabelRule.NoSuchRange, $"there is no range named '{name}'.", _device.DevicePath);
        }
    }

    /// <summary>Allocates <paramref name="length"/> bytes at the lowest free offset aligned to <paramref name="pageSize"/>.</summary>
    /// <param name="name">A unique name, 1 to 32 bytes of UTF-8.</param>
    /// <param name="length">The length; a positive multiple of the page size.</param>
    /// <param name="pageSize">The range's page size; a multiple of the device alignment (the alignment when null).</param>
    /// <returns>The new range, recorded durably before this returns.</returns>
    /// <exception cref="DaxLabelException">The name is bad or taken, the length misaligned, the page size too small, or no space or entry is free (<see cref="DaxLabelRule.Full"/>).</exception>
    public DaxAllocation Allocate(string name, long length, PageSize? pageSize = null)
    {
        PageSize page = pageSize ?? _device.Align;
        lock (_gate)
        {
            CheckRequest(name, page);
            if (length <= 0 || !RangeValidator.IsAligned(length, page))
            {
                throw new DaxLabelException(-1, DaxLabelRule.Unaligned, string.Create(CultureInfo.InvariantCulture,
                    $"range '{name}': length {length} is not a positive multiple of its page size {page.ToDisplayString()}."), _device.DevicePath);
            }
            long cursor = LabelAreaLength;
            foreach (DaxAllocation? entry in _entries.Append(null))
            {
                long gapEnd = entry?.Offset ?? _device.Size;
                long start = RangeValidator.AlignUp(cursor, (long)page);
                if (start <= gapEnd && length <= gapEnd - start)
                {
                    return Add(new DaxAllocation(name, start, length, page));
                }
                if (entry is not null)
                {
                    cursor = entry.End;
                }
            }
            throw new DaxLabelException(-1, DaxLabelRule.Full, string.Create(CultureInfo.InvariantCulture,
                $"no free {page.ToDisplayString()}-aligned space of {length} bytes for '{name}' on '{_device.DevicePath}'."), _device.DevicePath);
        }
    }

    /// <summary>Allocates the range <c>[offset, offset + length)</c>.</summary>
    /// <param name="name">A unique name, 1 to 32 bytes of UTF-8.</param>
    /// <param name="offset">The device offset; a multiple of the page size, at or after <see cref="LabelAreaLength"/>.</param>
    /// <param name="length">The length; a positive multiple of the page size.</param>
    /// <param name="pageSize">The range's page size; a multiple of the device alignment (the alignment when null).</param>
    /// <returns>The new range, recorded durably before this returns.</returns>
    /// <exception cref="DaxLabelException">The request is misaligned, out of bounds, overlaps a range, or the name is bad or taken.</exception>
    public DaxAllocation AllocateAt(string name, long offset, long length, PageSize? pageSize = null)
    {
        PageSize page = pageSize ?? _device.Align;
        lock (_gate)
        {
            CheckRequest(name, page);
            DaxAllocation request = LabelSlot.ValidateEntry(name, offset, length, (long)page, _device.Size, _device.Align, -1, -1, _device.DevicePath);
            foreach (DaxAllocation entry in _entries)
            {
                if (entry.Offset < request.End && request.Offset < entry.End)
                {
                    throw new DaxLabelException(-1, DaxLabelRule.Overlap, $"{request} overlaps {entry}.", _device.DevicePath);
                }
            }
            return Add(request);
        }
    }

    /// <summary>Frees the range named <paramref name="name"/>; its bytes become free for new ranges (their contents are left as they are).</summary>
    /// <param name="name">The range's name.</param>
    /// <exception cref="DaxLabelException">No range has that name.</exception>
    public void Free(string name)
    {
        lock (_gate)
        {
            DaxAllocation entry = Find(name) ?? throw new DaxLabelException(-1, DaxLabelRule.NoSuchRange, $"there is no range named '{name}'.", _device.DevicePath);
            var next = new List<DaxAllocation>(_entries);
            next.Remove(entry);
            Commit(next, tearAfterBytes: -1);
        }
    }

    /// <summary>
    /// Maps a range exactly like a device: offsets are relative to the range and, like the
    /// length, multiples of its page size (or of <see cref="DaxMappingOptions.PageSize"/>, which may not be smaller).
    /// </summary>
    /// <param name="name">The range's name.</param>
    /// <param name="options">The sub-range and flags; the whole range when null.</param>
    /// <returns>The mapping.</returns>
    /// <exception cref="DaxLabelException">No range has that name.</exception>
    /// <exception cref="ArgumentException">The offset or length is misaligned, or the page size is smaller than the range's.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The sub-range ends past the range.</exception>
    public DaxMapping Map(string name, DaxMappingOptions? options = null)
    {
        DaxAllocation entry = Get(name);
        return _device.MapRange(entry.Offset, entry.Length, entry.PageSize, options ?? DaxMappingOptions.Default,
            $"range '{name}' of '{_device.DevicePath}'");
    }

    /// <summary>Unmaps the label area and gives up ownership of it. The device stays open; mappings of ranges stay valid.</summary>
    public void Dispose()
    {
        _labels.Dispose();
        _ownership.Dispose();
    }

    /// <summary>Test hook: performs an allocation whose label write stops after <paramref name="tearAfterBytes"/> bytes of the new slot's body, as a crash would.</summary>
    internal void AllocateTorn(string name, long length, int tearAfterBytes)
    {
        lock (_gate)
        {
            CheckRequest(name, _device.Align);
            long start = _entries.Count == 0 ? LabelAreaLength : _entries[^1].End;
            var next = new List<DaxAllocation>(_entries) { new(name, start, length, _device.Align) };
            Commit(next, tearAfterBytes);
        }
    }

    private DaxAllocation? Find(string name)
    {
        foreach (DaxAllocation entry in _entries)
        {
            if (entry.Name == name)
            {
                return entry;
            }
        }
        return null;
    }

    private void CheckRequest(string name, PageSize page)
    {
        ArgumentNullException.ThrowIfNull(name);
        LabelSlot.ValidateName(name, _device.DevicePath);
        if (!PageSizes.IsDefined(page) || page < _device.Align)
        {
            throw new DaxLabelException(-1, DaxLabelRule.BadPageSize, string.Create(CultureInfo.InvariantCulture,
                $"range '{name}': page size {(long)page} is not a page size that is a multiple of the device alignment {_device.Align.ToDisplayString()}."), _device.DevicePath);
        }
        if (Find(name) is not null)
        {
            throw new DaxLabelException(-1, DaxLabelRule.DuplicateName, $"a range named '{name}' already exists.", _device.DevicePath);
        }
        if (_entries.Count >= MaxRanges)
        {
            throw new DaxLabelException(-1, DaxLabelRule.Full, string.Create(CultureInfo.InvariantCulture,
                $"the label table holds {MaxRanges} ranges, its maximum."), _device.DevicePath);
        }
    }

    private DaxAllocation Add(DaxAllocation entry)
    {
        var next = new List<DaxAllocation>(_entries) { entry };
        next.Sort((a, b) => a.Offset.CompareTo(b.Offset));
        Commit(next, tearAfterBytes: -1);
        return entry;
    }

    // Unpublish the other slot, write and persist its body, then publish it. Caller holds _gate.
    private void Commit(List<DaxAllocation> next, int tearAfterBytes)
    {
        int target = 1 - _activeSlot;
        ulong sequence = _sequence + 1;
        long slotOffset = (long)target * LabelSlot.Size;
        Span<byte> image = stackalloc byte[LabelSlot.Size];
        LabelSlot.Encode(image, target, sequence, _device.Size, _device.Align, next);

        _labels.GetRef<ulong>(slotOffset) = 0;
        _labels.Persist(slotOffset, sizeof(ulong));

        Span<byte> body = _labels.GetSpan(slotOffset + sizeof(ulong), LabelSlot.Size - sizeof(ulong));
        if (tearAfterBytes >= 0)
        {
            image[sizeof(ulong)..][..Math.Min(tearAfterBytes, body.Length)].CopyTo(body);
            _labels.Persist(slotOffset, LabelSlot.Size);
            throw new SimulatedCrashException();
        }
        image[sizeof(ulong)..].CopyTo(body);
        _labels.Persist(slotOffset, LabelSlot.Size);

        // One aligned 8-byte store publishes the slot.
        Volatile.Write(ref _labels.GetRef<ulong>(slotOffset), ~sequence);
        _labels.Persist(slotOffset, sizeof(ulong));

        _entries = next;
        _activeSlot = target;
        _sequence = sequence;
    }

    private static DaxMapping MapLabels(DaxDevice device)
        => device.MapRange(0, device.Size, device.Align, new DaxMappingOptions { Length = LabelSlot.AreaLength(device.Align) },
            "the label area of '" + device.DevicePath + "'");

    /// <summary>Thrown by the torn-write test hook where a crash would have stopped the update.</summary>
    internal sealed class SimulatedCrashException : Exception
    {
        public SimulatedCrashException() : base("simulated crash during a label update")
        {
        }
    }
}
