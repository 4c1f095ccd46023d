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

    /// <summary>The capacity the memory must have, in bytes: a devdax device's size, or a system-ram node's free memory.</summary>
    public long MinimumBytes { get; init; }

    /// <summary>What to rank by; latency by default.</summary>
    public TierPreference Prefer { get; init; }

    /// <summary>The CPU node the figures are taken from (HMAT <c>access1</c>, else <c>access0</c>, must list it), or null for the node the calling thread runs on.</summary>
    public int? Initiator { get; init; }

    /// <summary>Whether a device in system-ram mode (its node's memory, placed with <see cref="NodeMemory"/>) may be chosen; true by default.</summary>
    public bool AllowSystemRam { get; init; } = true;
}

/// <summary>One device weighed for a <see cref="TierRequest"/>: its node, figures and why it was passed over. Made by <see cref="TierPlacement.Rank"/>.</summary>
public sealed class TierCandidate
{
    internal TierCandidate(DaxDevice device, HmatPerformance? performance, long capacity, string? rejection)
    {
        Device = device;
        Performance = performance;
        CapacityBytes = capacity;
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

    /// <summary>The capacity weighed: the device size in devdax mode, the node's free memory (<c>MemFree</c>) in system-ram mode.</summary>
    public long CapacityBytes { get; }

    /// <summary>Why the device does not meet the request, or null when it does.</summary>
    public string? Rejection { get; }

    /// <summary>Whether the device meets the request.</summary>
    public bool Matches => Rejection is null;

    /// <inheritdoc/>
    public override string ToString()
    {
        string where = Node is { } n ? string.Create(CultureInfo.InvariantCulture, $"node{n.Id}{(n.Tier is { } t ? $" memory_tier{t.Id}" : "")}") : "no node";
        string perf = Performance?.ToString() ?? "no HMAT figures";
        return $"{Device.Name} ({Device.Source?.Kind.ToString() ?? "Unknown"}, {Device.MemoryPersistence}, {Device.Mode}, {where}, {perf}, {CapacityBytes} bytes)"
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
    public static IReadOnlyList<TierCandidate> Rank(DaxTopology topology, TierRequest request)
    {
        ArgumentNullException.ThrowIfNull(topology);
        ArgumentNullException.ThrowIfNull(request);
        ArgumentOutOfRangeException.ThrowIfNegative(request.MinimumBytes);
        int? initiator = request.Initiator ?? CurrentNode();
        var candidates = new List<TierCandidate>();
        foreach (DaxDevice device in topology.Devices)
        {
            HmatPerformance? performance = From(device.TargetMemoryNode, initiator);
            long capacity = device.DeviceMode == DaxDeviceMode.SystemRam ? NodeFreeBytes(device.SysfsRoot, device.TargetNode) : device.Size;
            candidates.Add(new TierCandidate(device, performance, capacity, Reject(device, request, capacity)));
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
    public static TierCandidate Select(DaxTopology topology, TierRequest request)
    {
        IReadOnlyList<TierCandidate> ranked = Rank(topology, request);
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
    /// <param name="candidate">A match from <see cref="Select"/>.</param>
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
            return string.Create(CultureInfo.InvariantCulture, $"{capacity} bytes, at least {request.MinimumBytes} asked for");
        }
        return null;
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
