using System.Globalization;
using DirectPmem.Driver;
using DirectPmem.Interop;
using DirectPmem.Mapping;

namespace DirectPmem.Placement;

/// <summary>What a tier request ranks by.</summary>
public enum TierPreference
{
    /// <summary>The lowest HMAT read latency from the initiator.</summary>
    LowestLatency,

    /// <summary>The highest HMAT read bandwidth from the initiator.</summary>
    HighestBandwidth,
}

/// <summary>
/// Memory asked for by what it is: "the lowest-latency persistent device with at least 1 GiB",
/// "the volatile memory with the most bandwidth from the node this thread runs on".
/// </summary>
public sealed record TierRequest
{
    /// <summary>Persistent or volatile memory; <see cref="DaxMemoryPersistence.Unknown"/> (the default) takes either.</summary>
    public DaxMemoryPersistence Persistence { get; init; }

    /// <summary>Only this kind of memory (NVDIMM, soft-reserved, CXL), or null for any.</summary>
    public DaxMemoryKind? Kind { get; init; }

    /// <summary>
    /// The free capacity the memory must have, in bytes: for a devdax device the longest range its
    /// <see cref="DaxRangeAllocator"/> can still give (<see cref="DaxRangeAllocator.LargestFreeLength"/>),
    /// for a system-ram device its node's free memory.
    /// </summary>
    public long MinimumBytes { get; init; }

    /// <summary>What to rank by; latency by default.</summary>
    public TierPreference Prefer { get; init; }

    /// <summary>The CPU node the figures are taken from (HMAT <c>access1</c>, else <c>access0</c>, must list it), or null for the node the calling thread runs on.</summary>
    public int? Initiator { get; init; }

    /// <summary>Whether a device in system-ram mode (its node's memory, placed with <see cref="NodeMemory"/>) may be chosen; true by default.</summary>
    public bool AllowSystemRam { get; init; } = true;
}

/// <summary>One device weighed for a <see cref="TierRequest"/>: its node, figures and why it was passed over. Made by <see cref="TierPlacement.Rank(DaxTopology, TierRequest)"/>.</summary>
public sealed class TierCandidate
{
    internal TierCandidate(DaxDevice device, HmatPerformance? performance, long capacity, string? capacityNote, string? rejection)
    {
        Device = device;
        Performance = performance;
        CapacityBytes = capacity;
        CapacityNote = capacityNote;
        Rejection = rejection;
    }

    /// <summary>The device.</summary>
    public DaxDevice Device { get; }

    /// <summary>The node its memory is on, when known.</summary>
    public MemoryNode? Node => Device.TargetMemoryNode;

    /// <summary>Whether the memory is reached through its node (system-ram mode) rather than mapped as device-DAX.</summary>
    public bool IsSystemRam => Device.DeviceMode == DaxDeviceMode.SystemRam;

    /// <summary>The HMAT figures from the request's initiator, or null when the node reports none for it.</summary>
    public HmatPerformance? Performance { get; }

    /// <summary>
    /// The free capacity weighed. In devdax mode, the longest range the device's range allocator can
    /// still give (<see cref="DaxRangeAllocator.LargestFreeLength"/>, read through a read-only open of
    /// its table); for a device with no table yet, what <see cref="DaxRangeAllocator.Format"/> would
    /// leave; 0 when its table is unusable or held by a writable allocator; its whole size when the
    /// device node cannot be opened to read it (<see cref="CapacityNote"/> says which). In system-ram
    /// mode, the node's free memory (<c>MemFree</c>).
    /// </summary>
    public long CapacityBytes { get; }

    /// <summary>How <see cref="CapacityBytes"/> was found when it is not the allocator's or the node's own figure (no table yet, unreadable, in use), else null.</summary>
    public string? CapacityNote { get; }

    /// <summary>Why the device does not meet the request, or null when it does.</summary>
    public string? Rejection { get; }

    /// <summary>Whether the device meets the request.</summary>
    public bool Matches => Rejection is null;

    /// <inheritdoc/>
    public override string ToString()
    {
        string where = Node is { } n ? string.Create(CultureInfo.InvariantCulture, $"node{n.Id}{(n.Tier is { } t ? $" memory_tier{t.Id}" : "")}") : "no node";
        string perf = Performance?.ToString() ?? "no HMAT figures";
        string note = CapacityNote is null ? "" : $" ({CapacityNote})";
        return $"{Device.Name} ({Device.Source?.Kind.ToString() ?? "Unknown"}, {Device.MemoryPersistence}, {Device.Mode}, {where}, {perf}, {CapacityBytes} bytes free{note})"
            + (Rejection is null ? "" : ": " + Rejection);
    }
}

/// <summary>
/// Chooses memory by kind and performance among the devices of a scan, and maps it: a devdax
/// device through its range allocator, a system-ram device through its node (<see cref="NodeMemory"/>,
/// placement checked page by page). A request nothing meets is a <see cref="MemoryPlacementException"/>
/// that lists every device and why it was passed over.
/// </summary>
public static class TierPlacement
{
    /// <summary>Weighs every device of <paramref name="topology"/> for <paramref name="request"/>: matches first, best first, then the rest with their reasons.</summary>
    /// <param name="topology">A scan (<see cref="DaxBus.Scan"/>).</param>
    /// <param name="request">What is asked for.</param>
    /// <returns>Every device, ranked.</returns>
    public static IReadOnlyList<TierCandidate> Rank(DaxTopology topology, TierRequest request) => Rank(topology, request, AllocatorFreeSpace);

    /// <summary>
    /// <see cref="Rank(DaxTopology, TierRequest)"/> with the free space of a devdax device read by
    /// <paramref name="freeSpace"/> (tests weigh fixture devices through emulated ones).
    /// </summary>
    internal static IReadOnlyList<TierCandidate> Rank(DaxTopology topology, TierRequest request, Func<DaxDevice, DeviceFreeSpace> freeSpace)
    {
        ArgumentNullException.ThrowIfNull(topology);
        ArgumentNullException.ThrowIfNull(request);
        ArgumentOutOfRangeException.ThrowIfNegative(request.MinimumBytes);
        int? initiator = request.Initiator ?? CurrentNode();
        var candidates = new List<TierCandidate>();
        foreach (DaxDevice device in topology.Devices)
        {
            HmatPerformance? performance = From(device.TargetMemoryNode, initiator);
            DeviceFreeSpace free = device.DeviceMode switch
            {
                DaxDeviceMode.SystemRam => new(NodeFreeBytes(device.SysfsRoot, device.TargetNode), null),
                DaxDeviceMode.DeviceDax => freeSpace(device),
                _ => new(0, null),
            };
            candidates.Add(new TierCandidate(device, performance, free.Bytes, free.Note, Reject(device, request, free.Bytes)));
        }
        return candidates
            .OrderBy(c => c.Matches ? 0 : 1)
            .ThenBy(c => Figure(c.Performance, request.Prefer) is null ? 1 : 0)
            .ThenBy(c => Figure(c.Performance, request.Prefer) ?? 0)
            .ThenBy(c => c.Node?.Tier?.Id ?? int.MaxValue)
            .ThenBy(c => c.Device.Name, StringComparer.Ordinal)
            .ToList().AsReadOnly();
    }

    /// <summary>The best device for <paramref name="request"/>.</summary>
    /// <param name="topology">A scan.</param>
    /// <param name="request">What is asked for.</param>
    /// <returns>The best match.</returns>
    /// <exception cref="MemoryPlacementException">Nothing matches (<see cref="MemoryPlacementFailure.NoMatchingMemory"/>); the message lists every device and why.</exception>
    public static TierCandidate Select(DaxTopology topology, TierRequest request) => Select(topology, request, AllocatorFreeSpace);

    /// <summary><see cref="Select(DaxTopology, TierRequest)"/> with the free space of a devdax device read by <paramref name="freeSpace"/>.</summary>
    internal static TierCandidate Select(DaxTopology topology, TierRequest request, Func<DaxDevice, DeviceFreeSpace> freeSpace)
    {
        IReadOnlyList<TierCandidate> ranked = Rank(topology, request, freeSpace);
        if (ranked.Count > 0 && ranked[0].Matches)
        {
            return ranked[0];
        }
        List<string> available = ranked.Select(c => c.ToString()).ToList();
        throw new MemoryPlacementException(MemoryPlacementFailure.NoMatchingMemory,
            $"no memory matches {Describe(request)}; there is: {(available.Count == 0 ? "no dax device" : string.Join("; ", available))}.", available.AsReadOnly());
    }

    /// <summary>
    /// Maps <paramref name="length"/> bytes of the chosen memory: from a devdax device, a new range
    /// <paramref name="rangeName"/> of its range allocator (the device must be formatted with
    /// <see cref="DaxRangeAllocator.Format"/>); from a system-ram device, memory bound to its node with
    /// <see cref="NodePolicy.Bind"/> and checked page by page.
    /// </summary>
    /// <param name="candidate">A match from <see cref="Select(DaxTopology, TierRequest)"/>.</param>
    /// <param name="length">The number of bytes; a multiple of the device alignment (devdax) or page size.</param>
    /// <param name="rangeName">The range's name on a devdax device (ignored for system-ram).</param>
    /// <returns>The mapping.</returns>
    /// <exception cref="MemoryPlacementException">The candidate does not match its request, or its pages are not on its node.</exception>
    /// <exception cref="DaxLabelException">The device has no range table, or no room for the range.</exception>
    public static DaxMapping Map(TierCandidate candidate, long length, string rangeName)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        ArgumentNullException.ThrowIfNull(rangeName);
        if (!candidate.Matches)
        {
            throw new MemoryPlacementException(MemoryPlacementFailure.NoMatchingMemory, $"{candidate.Device.Name} does not meet the request: {candidate.Rejection}", [candidate.ToString()]);
        }
        if (candidate.IsSystemRam)
        {
            int node = candidate.Device.TargetNode
                ?? throw new MemoryPlacementException(MemoryPlacementFailure.NoSuchNode, $"{candidate.Device.Name} is in system-ram mode on no node.", [candidate.ToString()]);
            return NodeMemory.Map(candidate.Device.SysfsRoot, [node], length, NodePolicy.Bind, null);
        }
        using DaxRangeAllocator allocator = DaxRangeAllocator.Open(candidate.Device);
        allocator.Allocate(rangeName, length);
        return allocator.Map(rangeName);
    }

    private static string? Reject(DaxDevice device, TierRequest request, long capacity)
    {
        if (request.Persistence != DaxMemoryPersistence.Unknown && device.MemoryPersistence != request.Persistence)
        {
            return $"{device.MemoryPersistence} memory, {request.Persistence} asked for";
        }
        if (request.Kind is { } kind && device.Source?.Kind != kind)
        {
            return $"{device.Source?.Kind.ToString() ?? "Unknown"} memory, {kind} asked for";
        }
        if (device.DeviceMode == DaxDeviceMode.SystemRam && !request.AllowSystemRam)
        {
            return "in system-ram mode, which the request excludes";
        }
        if (device.DeviceMode is not (DaxDeviceMode.DeviceDax or DaxDeviceMode.SystemRam))
        {
            return $"bound to '{device.Mode}', neither device_dax nor kmem";
        }
        if (capacity < request.MinimumBytes)
        {
            return string.Create(CultureInfo.InvariantCulture, $"{capacity} bytes free, at least {request.MinimumBytes} asked for");
        }
        return null;
    }

    /// <summary>
    /// The longest range a devdax device's allocator can still give, read through a read-only open
    /// of its table (it takes the table's shared lock for the moment of the read).
    /// </summary>
    internal static DeviceFreeSpace AllocatorFreeSpace(DaxDevice device)
    {
        try
        {
            using DaxRangeAllocator allocator = DaxRangeAllocator.OpenReadOnly(device);
            return new(allocator.LargestFreeLength, null);
        }
        catch (DaxLabelException e) when (e.Rule == DaxLabelRule.NotFormatted)
        {
            long afterLabels = device.Size - DaxRangeAllocator.LabelAreaLengthFor(device.Align);
            return new(Math.Max(0, afterLabels), "no range table yet: what DaxRangeAllocator.Format would leave");
        }
        catch (DaxLabelException e)
        {
            return new(0, $"its range table is unusable ({e.Rule}): {e.Message}");
        }
        catch (PmemInUseException e)
        {
            // A writable allocator (here or in another process) owns the table: Map could not allocate from it now.
            return new(0, $"its range table is held by a writable allocator: {e.Message}");
        }
        catch (Exception e) when (e is PmemException or IOException or UnauthorizedAccessException)
        {
            // Unreadable here (no device node, not permitted): the size is the most it could give.
            return new(device.Size, $"free space not readable, whole size counted: {e.Message}");
        }
    }

    private static HmatPerformance? From(MemoryNode? node, int? initiator)
    {
        if (node is null)
        {
            return null;
        }
        if (initiator is not int i)
        {
            return node.Access1 ?? node.Access0;
        }
        if (node.Access1 is { } a1 && a1.Initiators.Contains(i))
        {
            return a1;
        }
        return node.Access0 is { } a0 && a0.Initiators.Contains(i) ? a0 : null;
    }

    // Lower is better: latency as is, bandwidth negated.
    private static long? Figure(HmatPerformance? p, TierPreference prefer) => prefer == TierPreference.LowestLatency
        ? p?.ReadLatencyNanoseconds
        : -(long?)p?.ReadBandwidthMBps;

    private static unsafe int? CurrentNode()
    {
        uint cpu, node;
        return Libc.GetCpu(&cpu, &node) == 0 ? (int)node : null;
    }

    private static long NodeFreeBytes(string root, int? node)
    {
        if (node is not int n || n < 0)
        {
            return 0;
        }
        string path = Path.Join(root, "devices", "system", "node", string.Create(CultureInfo.InvariantCulture, $"node{n}"), "meminfo");
        foreach (string line in (SysfsReader.TryReadText(path) ?? "").Split('\n'))
        {
            // "Node 1 MemFree:          524288 kB"
            string[] parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 5 && parts[2] == "MemFree:" && long.TryParse(parts[3], NumberStyles.None, CultureInfo.InvariantCulture, out long kib))
            {
                return kib * 1024;
            }
        }
        return 0;
    }

    private static string Describe(TierRequest r) => string.Create(CultureInfo.InvariantCulture,
        $"{(r.Persistence == DaxMemoryPersistence.Unknown ? "any" : r.Persistence.ToString().ToLowerInvariant())} {r.Kind?.ToString() ?? ""} memory of at least {r.MinimumBytes} bytes, {(r.Prefer == TierPreference.LowestLatency ? "lowest latency" : "highest bandwidth")}{(r.Initiator is int i ? $" from node{i}" : "")}").Replace("  ", " ", StringComparison.Ordinal);
}

/// <summary>The free space a devdax device's allocator can still give, and how it was found when not from its table.</summary>
internal readonly record struct DeviceFreeSpace(long Bytes, string? Note);
