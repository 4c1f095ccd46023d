namespace DirectPmem.Placement;

/// <summary>Why a placement request failed.</summary>
public enum MemoryPlacementFailure
{
    /// <summary>The NUMA node does not exist (no <c>/sys/devices/system/node/nodeN</c>).</summary>
    NoSuchNode,

    /// <summary>The node exists but has no online memory (it is not in <c>has_memory</c>).</summary>
    NodeHasNoMemory,

    /// <summary>No device or node matches the request; the message lists what exists and why each was passed over.</summary>
    NoMatchingMemory,

    /// <summary>After populating, the kernel reports pages that are not on the node asked for.</summary>
    PagesElsewhere,

    /// <summary>The device is in system-ram mode (bound to <c>kmem</c>): its memory is the kernel's, it cannot be mapped as device-DAX; place on its node instead.</summary>
    DeviceIsSystemRam,
}

/// <summary>
/// A placement request that cannot be met: the node or memory asked for does not exist, or the
/// pages did not land where asked. The message says what exists. Nothing is left mapped.
/// </summary>
public sealed class MemoryPlacementException : PmemException
{
    internal MemoryPlacementException(MemoryPlacementFailure failure, string message, IReadOnlyList<string> available)
        : base(message)
    {
        Failure = failure;
        Available = available;
    }

    /// <summary>Why the request failed.</summary>
    public MemoryPlacementFailure Failure { get; }

    /// <summary>What exists instead: one line per node or device, with why it did not match.</summary>
    public IReadOnlyList<string> Available { get; }
}
